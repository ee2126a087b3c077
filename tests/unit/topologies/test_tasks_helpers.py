"""Helpers shared by the tasks-topology unit tests: record builders and an in-memory harness that runs the
pure steps with a fake clock, delivering the inbox (dependency messages, cron creations) and due timers."""

from __future__ import annotations

import random
from collections import defaultdict, deque
from typing import Any

from topologies.tasks import (
    EVENTS,
    INBOX,
    TIMERS,
    TasksConfig,
    from_command,
    from_decision,
    from_due_timer,
    from_rmf,
    from_schedule,
    from_telemetry,
    inbox_key,
    step,
    step_schedule,
)

T0 = 1_750_000_000_000  # 2025-06-15T15:06:40Z
CFG = TasksConfig(default_timeout_ms=60_000, retry_backoff_base_ms=1_000, retry_backoff_max_ms=8_000)


def spec(**kw: Any) -> dict[str, Any]:
    base = {
        "category": "delivery",
        "priority": 5,
        "pickup_node": "A",
        "dropoff_node": "B",
        "required_capabilities": [],
        "deadline": None,
        "timeout_ms": None,
        "max_attempts": 3,
        "depends_on": [],
        "on_dependency_failure": "CANCEL",
        "fleet_id": None,
        "robot_id": None,
        "labels": {},
        "payload_json": None,
    }
    base.update(kw)
    return base


def command(task_id: str, command: str, at: int = T0, tenant: str = "t1", **kw: Any) -> dict[str, Any]:
    return {
        "event_id": f"cmd-{task_id}-{command}-{at}",
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at,
        "task_id": task_id,
        "command": command,
        "idempotency_key": kw.pop("idempotency_key", None),
        "spec": kw.pop("spec", None),
        "reason": kw.pop("reason", None),
        "requested_by": kw.pop("requested_by", None),
        "timer": kw.pop("timer", None),
    }


def create(task_id: str, at: int = T0, tenant: str = "t1", **spec_kw: Any) -> dict[str, Any]:
    return from_command(command(task_id, "CREATE", at, tenant, spec=spec(**spec_kw), requested_by="alice"))[0]


def cancel(task_id: str, at: int = T0, tenant: str = "t1", reason: str | None = None) -> dict[str, Any]:
    return from_command(command(task_id, "CANCEL", at, tenant, reason=reason))[0]


def decision(task_id: str | None, kind: str, robot: str, at: int = T0, tenant: str = "t1") -> dict[str, Any]:
    return {
        "event_id": f"dec-{task_id}-{kind}-{at}",
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at,
        "decision_id": f"d-{at}",
        "kind": kind,
        "robot_id": robot,
        "task_id": task_id,
        "route": [],
        "eta": None,
        "cost": None,
        "reason": None,
        "conflict_id": None,
        "planner": "in_process",
    }


def assign(task_id: str, robot: str = "r1", at: int = T0, tenant: str = "t1") -> dict[str, Any]:
    return from_decision(decision(task_id, "ASSIGN", robot, at, tenant))[0]


def unassign(task_id: str, robot: str = "r1", at: int = T0, tenant: str = "t1") -> dict[str, Any]:
    return from_decision(decision(task_id, "UNASSIGN", robot, at, tenant))[0]


def telemetry(
    task_id: str | None, phase: str, robot: str = "r1", at: int = T0, tenant: str = "t1"
) -> dict[str, Any]:
    return {
        "event_id": f"tel-{robot}-{at}",
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at,
        "robot_id": robot,
        "fleet_id": "f1",
        "seq": at,
        "pose": {"x": 0.0, "y": 0.0, "yaw": 0.0, "node_id": None, "map_name": None},
        "battery": 0.9,
        "speed": 0.0,
        "mode": "WORKING",
        "error_code": "E42" if phase == "FAILED" else None,
        "task_id": task_id,
        "task_phase": phase,
        "route": [],
    }


def progress(task_id: str, phase: str, robot: str = "r1", at: int = T0, tenant: str = "t1") -> dict[str, Any]:
    return from_telemetry(telemetry(task_id, phase, robot, at, tenant))[0]


def rmf_state(task_id: str, status: str | None = None, dispatch: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"booking": {"id": f"rmf-{task_id}", "labels": [f"fleetstream_task_id={task_id}"]}}
    if status:
        data["status"] = status
    if dispatch:
        data["dispatch"] = {"status": dispatch}
    return {"type": "task_state_update", "data": data}


def rmf(task_id: str, status: str | None = None, dispatch: str | None = None, at: int = T0) -> dict[str, Any]:
    return from_rmf(rmf_state(task_id, status, dispatch), at)[0]


def schedule(
    schedule_id: str,
    cron: str,
    at: int = T0,
    tz: str = "UTC",
    misfire: str = "FIRE_ONCE",
    enabled: bool = True,
    **spec_kw: Any,
) -> dict[str, Any]:
    record = {
        "event_id": f"sch-{schedule_id}-{at}",
        "tenant_id": "t1",
        "site_id": "s1",
        "occurred_at": at,
        "schedule_id": schedule_id,
        "cron": cron,
        "timezone": tz,
        "template": spec(category="patrol", **spec_kw),
        "enabled": enabled,
        "misfire_policy": misfire,
    }
    return from_schedule(record, schedule_id, at)[0]


class Harness:
    """Feeds inputs to the pure steps like the processor does, with a fake wall clock.

    ``events[task_id]`` collects TaskEvents, ``timers`` the armed timers (tombstones remove them),
    ``inbox`` the inputs produced back to the inbox (delivered by ``drain``).
    """

    def __init__(self, cfg: TasksConfig = CFG, now: int = T0, seed: int | None = None) -> None:
        self.cfg = cfg
        self.now = now
        self.tasks: dict[str, dict[str, Any] | None] = {}
        self.schedules: dict[str, dict[str, Any] | None] = {}
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.timers: dict[str, dict[str, Any]] = {}
        self.tombstoned: list[str] = []
        self.inbox: deque[dict[str, Any]] = deque()
        self.rng = random.Random(seed) if seed is not None else None

    def apply(self, inp: dict[str, Any]) -> list[Any]:
        key = inbox_key(inp)
        if inp["type"] in ("schedule", "fire"):
            new, out = step_schedule(self.schedules.get(key), inp, self.cfg, self.now)
            self.schedules[key] = new
        else:
            new, out = step(self.tasks.get(key), inp, self.cfg)
            self.tasks[key] = new
        for o in out:
            if o.topic == EVENTS:
                assert o.value is not None
                self.events[o.key].append(o.value)
            elif o.topic == TIMERS:
                if o.value is None:
                    self.timers.pop(o.key, None)
                    self.tombstoned.append(o.key)
                else:
                    self.timers[o.key] = o.value
            elif o.topic == INBOX:  # a message to another key, through the inbox
                assert o.value is not None and inbox_key(o.value.payload) == o.key
                self.inbox.append(o.value.payload)
        return out

    def send(self, *inps: dict[str, Any], drain: bool = True) -> None:
        for inp in inps:
            self.apply(inp)
        if drain:
            self.drain()

    def drain(self) -> None:
        """Deliver inbox messages until none is left. Seeded, the order is random across receivers but
        first-in first-out per receiver, as Kafka keeps it per key (one key, one partition)."""
        while self.inbox:
            if self.rng is None:
                self.apply(self.inbox.popleft())
                continue
            keys = sorted({inbox_key(m) for m in self.inbox})
            key = keys[self.rng.randrange(len(keys))]
            i = next(i for i, m in enumerate(self.inbox) if inbox_key(m) == key)
            message = self.inbox[i]
            del self.inbox[i]
            self.apply(message)

    def advance(self, to: int) -> None:
        """Move the wall clock to ``to`` and fire every timer due by then, in due order."""
        while True:
            due = sorted((t["due_at"], tid) for tid, t in self.timers.items() if t["due_at"] <= to)
            if not due:
                break
            _, tid = due[0]
            timer = self.timers.pop(tid)
            self.now = max(self.now, timer["due_at"])
            self.send(*from_due_timer(timer))
        self.now = max(self.now, to)

    def state(self, task_id: str) -> str | None:
        task = self.tasks.get(task_id)
        return task["status"] if task else None

    def kinds(self, task_id: str) -> list[tuple[str, str]]:
        return [(e["kind"], e["state"]) for e in self.events[task_id]]

    def transitions(self, task_id: str) -> list[str]:
        return [e["state"] for e in self.events[task_id] if e["kind"] == "TRANSITION"]
