"""Vehicles of ``vda5050-sdk`` (PyPI; VDA 5050 2.1.0): its VehicleClient over its aiomqtt transport and its
reference OrderExecutor, on an asyncio loop in a thread of their own (or, ``python -m
tests.integration.vda5050.sdk SERIAL NODE X Y``, alone in a process a test can SIGKILL: the broker then
publishes the vehicle's last will), driving the demo warehouse.

Nothing of the vehicle side is ours: order acceptance (its 9-step policy), stitching checks, node traversal,
action states, cancel and pause are the SDK's. We give it a start node, a factsheet, and the time a node and
an action take."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

from vda5050 import ActionStatus, VehicleClient, VehicleConfig
from vda5050.client.agv.executor import OrderExecutor
from vda5050.model.factsheet import Factsheet

from tests.integration.vda5050.support import PASSWORD, mqtt_url

__all__ = ["SdkFleet", "SdkVehicle"]

_FACTSHEET = {
    "headerId": 0,
    "timestamp": "2026-01-01T00:00:00.00Z",
    "version": "2.1.0",
    "manufacturer": "dev",
    "serialNumber": "",
    "typeSpecification": {"seriesName": "SDK-AGV", "agvKinematic": "DIFF", "agvClass": "CARRIER",
                          "maxLoadMass": 500, "localizationTypes": ["NATURAL"], "navigationTypes": ["AUTONOMOUS"]},
    "physicalParameters": {"speedMin": 0.0, "speedMax": 1.2, "accelerationMax": 1.0, "decelerationMax": 1.0,
                           "heightMax": 1.5, "width": 0.8, "length": 1.2},
    "protocolLimits": {"maxStringLens": {}, "maxArrayLens": {"order.nodes": 200, "order.edges": 199},
                       "timing": {"minOrderInterval": 0.1, "minStateInterval": 0.1}},
    "protocolFeatures": {"optionalParameters": [], "agvActions": [
        {"actionType": "pick", "actionScopes": ["NODE"]}, {"actionType": "drop", "actionScopes": ["NODE"]},
        {"actionType": "startCharging", "actionScopes": ["NODE", "INSTANT"]}]},
    "agvGeometry": {},
    "loadSpecification": {"loadSets": [{"setName": "pallet", "loadType": "EPAL"}]},
}  # fmt: skip


class SdkVehicle:
    """One SDK vehicle: a VehicleClient whose accepted orders and updates run in the SDK's OrderExecutor."""

    def __init__(self, serial: str, node: str, xy: tuple[float, float], *, node_delay: float = 0.2,
                 action_delay: float = 0.3) -> None:  # fmt: skip
        self.serial = serial
        self.node, self.xy = node, xy
        self.node_delay, self.action_delay = node_delay, action_delay
        factsheet = Factsheet.model_validate({**_FACTSHEET, "serialNumber": serial})
        self.config = VehicleConfig(
            manufacturer="dev",
            serial_number=serial,
            broker_url=mqtt_url(),
            username=f"dev/{serial}",
            password=PASSWORD,
            client_id=f"sdk-{serial}",
            state_interval=1.0,
            validate_messages=True,  # the SDK checks our orders against its own copy of the schemas
        )
        self.client = VehicleClient(self.config, factsheet_provider=lambda: factsheet)
        self.client.on_order(self._run)
        self.runs: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        await self.client.connect()
        publisher = self.client.publisher
        publisher.update_position(x=self.xy[0], y=self.xy[1], theta=0.0, map_id="w1")
        publisher.mark_node_traversed(self.node, 0)
        await self.client.publish_state()

    async def _run(self, order: Any) -> None:
        executor = OrderExecutor(
            self.client.publisher, node_delay=self.node_delay, action_delay=self.action_delay
        )
        self.runs.append(asyncio.ensure_future(executor.run(order)))

    async def stop(self) -> None:
        for run in self.runs:
            run.cancel()
        with contextlib.suppress(Exception):
            await self.client.disconnect()

    def action_status(self, action_id: str) -> ActionStatus | None:
        return self.client.publisher.action_status(action_id)


class SdkFleet:
    """SDK vehicles on an asyncio loop in a thread."""

    def __init__(self, vehicles: list[SdkVehicle]) -> None:
        self.vehicles = {v.serial: v for v in vehicles}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sdk-vehicles", daemon=True)

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> SdkFleet:
        self._thread.start()
        for vehicle in self.vehicles.values():
            self.call(vehicle.start())
        return self

    def stop(self) -> None:
        for vehicle in self.vehicles.values():
            with contextlib.suppress(Exception):
                self.call(vehicle.stop(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    """Run one vehicle until killed: ``SERIAL NODE X Y [NODE_DELAY]``."""
    import sys

    args = argv if argv is not None else sys.argv[1:]
    serial, node, x, y = args[0], args[1], float(args[2]), float(args[3])
    vehicle = SdkVehicle(serial, node, (x, y), node_delay=float(args[4]) if len(args) > 4 else 0.2)

    async def run() -> None:
        await vehicle.start()
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
