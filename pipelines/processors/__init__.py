"""The deployables, one module per processor, and :data:`PROCESSORS`, the one list of them.

A processor's name is hyphenated and the same everywhere: ``fleet run sink-postgres``, the consumer group
``<prefix>fleet-sink-postgres``, the dead-letter topic ``dlq.sink-postgres``, the Helm key
``processors.sink-postgres`` and the compose service. Its module, ``pipelines.processors.sink_postgres``,
defines ``Settings`` (a ``CommonSettings``) and ``run(settings)``, and ``build(settings)`` when it is a
Quix Streams application. The CLI, ``fleet up``, the metrics ports, the chart's tests and the catalog's
dead-letter topics all read :data:`PROCESSORS`; modules are imported only when a processor is used.
"""

from __future__ import annotations

import ast
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pipelines.settings import ConfigError

__all__ = ["PROCESSORS", "Processor", "processor"]

logger = logging.getLogger(__name__)

Kind = Literal["topology", "sink", "service"]


@dataclass(frozen=True)
class Processor:
    """One deployable: its name, module and role.

    :param name: the hyphenated name (CLI, consumer group, DLQ topic, Helm, compose).
    :param kind: ``topology`` (exactly-once Quix application), ``sink`` (at-least-once Quix application
        writing a store), ``service`` (anything else: the timer service, the gateway, the planner).
    :param optional: the ``fleet up`` flag that starts it (None: always started).
    :param dead_letters: whether it has a ``dlq.<name>`` topic.
    :param replay: whether ``fleet replay`` re-processes it (every input comes through its inbox, fed by
        its module's ``SOURCES`` re-keyed by ``FEED_KEY``, and its step writes nothing to its inbox).
    """

    name: str
    kind: Kind
    optional: str | None = None
    dead_letters: bool = True
    replay: bool = False

    @property
    def module_name(self) -> str:
        return f"pipelines.processors.{self.name.replace('-', '_')}"

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    @property
    def settings(self) -> Any:
        """The processor's settings class."""
        return self.module.Settings

    @property
    def summary(self) -> str:
        """First line of the module's docstring, read from the source (nothing is imported)."""
        source = Path(__file__).with_name(f"{self.name.replace('-', '_')}.py")
        doc = ast.get_docstring(ast.parse(source.read_text())) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def build(self, settings: Any) -> Any:
        """The processor's application, fully wired and not running (Quix processors only)."""
        return self.module.build(settings)

    def run(self, settings: Any) -> None:
        self.module.run(settings)


PROCESSORS: dict[str, Processor] = {
    p.name: p
    for p in (
        Processor("telemetry", "topology"),
        Processor("tasks", "topology"),
        Processor("dispatch", "topology", replay=True),
        Processor("traffic", "topology", replay=True),
        Processor("rmf-ingest", "topology", optional="with_rmf"),
        Processor("timers", "service", dead_letters=False),
        Processor("sink-postgres", "sink"),
        Processor("sink-influx", "sink"),
        Processor("sink-redis", "sink"),
        Processor("sink-rmf", "sink", optional="with_rmf"),
        Processor("vda5050", "topology", optional="with_vda5050"),
        Processor("gateway", "service"),
        Processor("planner", "service", dead_letters=False),
    )
}


def processor(name: str) -> Processor:
    """The processor ``name``; the old underscore spelling (``sink_postgres``) is accepted with a warning."""
    found = PROCESSORS.get(name)
    if found is None and "_" in name:
        found = PROCESSORS.get(name.replace("_", "-"))
        if found is not None:
            logger.warning("processor name %r is deprecated: use %r", name, found.name)
    if found is None:
        raise ConfigError(f"unknown processor {name!r}; known: {', '.join(PROCESSORS)}")
    return found
