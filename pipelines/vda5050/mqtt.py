"""A small MQTT client for the bridge and the simulator: paho-mqtt with TLS, credentials, reconnection
and re-subscription, a message callback, and publishing that says when the broker is not connected."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from schemas.errors import FleetError

__all__ = ["MessageHandler", "MqttClient", "MqttError", "Will"]

logger = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, int], None]
"""``(topic, payload, received_at_ms)``, called on the client's network thread."""

Will = tuple[str, bytes, int, bool]
"""A last will: ``(topic, payload, qos, retain)``."""


class MqttError(FleetError):
    """The broker refused us, or a publish could not be handed to it."""


class MqttClient:
    """One MQTT connection. ``connect`` blocks until the broker accepted it (or raises); afterwards the
    network thread reconnects on its own and subscribes again to ``subscriptions``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 15,
        tls: bool = False,
        ca_location: str | None = None,
        cert_location: str | None = None,
        key_location: str | None = None,
        subscriptions: Sequence[str] = (),
        on_message: MessageHandler | None = None,
        will: Will | None = None,
        qos: int = 0,
        clean_session: bool = True,
    ) -> None:
        self.host, self.port = host, port
        self.subscriptions = list(subscriptions)
        self._qos = qos
        self._on_message = on_message
        self._connected = threading.Event()
        self._refused: str | None = None
        self._closing = False  # close() was called: a disconnect is ours, not a lost broker
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
        )
        self._client.max_queued_messages_set(0)
        self._client.max_inflight_messages_set(1000)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        if username:
            self._client.username_pw_set(username, password)
        if tls:
            self._client.tls_set(
                ca_certs=ca_location,
                certfile=cert_location,
                keyfile=key_location,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if will is not None:
            topic, payload, will_qos, retain = will
            self._client.will_set(topic, payload, qos=will_qos, retain=retain)
        self._keepalive = keepalive
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message

    # -- lifecycle ---------------------------------------------------------------------------------------
    def connect(self, timeout_s: float = 30.0) -> MqttClient:
        try:
            self._client.connect(self.host, self.port, keepalive=self._keepalive)
        except OSError as exc:
            raise MqttError(f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        deadline = time.monotonic() + timeout_s
        while not self._connected.wait(0.1):
            if self._refused is not None:
                self.close()
                raise MqttError(f"the MQTT broker at {self.host}:{self.port} refused us: {self._refused}")
            if time.monotonic() > deadline:
                self.close()
                raise MqttError(
                    f"no answer from the MQTT broker at {self.host}:{self.port} in {timeout_s:g} s"
                )
        return self

    def close(self, *, graceful: bool = True) -> None:
        """Disconnect (a graceful disconnect: the broker does not send the last will) and stop."""
        self._closing = True
        if graceful:
            self._client.disconnect()
        self._client.loop_stop()

    def drop(self) -> None:
        """Close the socket without a DISCONNECT, as a crash would: the broker sends the last will."""
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    # -- traffic -----------------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> Any:
        """Hand a message to the broker connection; MqttError when it is not connected."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return info

    def subscribe(self, topics: Sequence[str]) -> None:
        """Add subscriptions (kept for reconnects)."""
        self.subscriptions.extend(topics)
        if self.connected and topics:
            self._client.subscribe([(t, self._qos) for t in topics])

    # -- callbacks (network thread) ----------------------------------------------------------------------
    def _handle_connect(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            logger.error("MQTT broker %s:%s refused the connection: %s", self.host, self.port, reason)
            return
        if self.subscriptions:
            client.subscribe([(t, self._qos) for t in self.subscriptions])
        self._connected.set()
        logger.info("connected to the MQTT broker %s:%s", self.host, self.port)

    def _handle_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any,
                           _props: Any) -> None:  # fmt: skip
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._closing:
            logger.warning("lost the MQTT broker %s:%s (%s); reconnecting", self.host, self.port, reason)

    def _handle_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        if self._on_message is not None:
            self._on_message(message.topic, bytes(message.payload), time.time_ns() // 1_000_000)
