"""The state store of every stateful topology keeps its name (docs/operations.md, "State stores").

Quix Streams names a stateful step's store, and its changelog topic ``changelog__<group>--<stream
id>--default``, after the step's input topics (their sorted real names joined by ``--``); there is no
public way to name it otherwise. A processor whose store name changes starts from empty state, its
changelog orphaned. So the steps read their own inbox (named after the processor, not after any input)
and, where a high-volume input is read directly, that input's name is part of the store's name and must
never change. This test builds each processor as ``fleet run`` does and pins the names: a new direct input,
a renamed topic or a setting that changes the wiring fails here first.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.processors import PROCESSORS
from pipelines.settings import CommonSettings
from tests.integration.processes import delete_topics_of

#: processor -> the catalog topics its stateful step is the dataframe of (its store's name).
STORES = {
    "telemetry": ("robot.registry", "robot.telemetry", "telemetry.inbox", "timers.due.telemetry"),
    "tasks": ("tasks.inbox",),
    "dispatch": ("dispatch.inbox",),
    "traffic": ("traffic.inbox",),
    "rmf-ingest": ("rmf.fleet_states", "timers.due.rmf-ingest"),
    "vda5050": ("vda5050.decisions", "vda5050.inbound"),
}
#: What a processor cannot start without.
REQUIRED = {
    "rmf-ingest": {"rmf_tenant_id": "acme", "rmf_site_id": "s1"},
    "vda5050": {"vda_tenant_id": "acme", "vda_site_id": "s1"},
}


@pytest.fixture
def prefixed(
    settings: CommonSettings, kafka_admin: AdminClient, unique_prefix: str
) -> Iterator[CommonSettings]:
    yield settings.model_copy(update={"topic_prefix": unique_prefix})
    delete_topics_of(kafka_admin, unique_prefix)


@pytest.mark.parametrize("name", sorted(STORES))
def test_a_topologys_state_store_is_named_after_its_inbox_or_its_fixed_direct_inputs(
    name: str, prefixed: CommonSettings
) -> None:
    processor = PROCESSORS[name]
    settings = processor.settings(**prefixed.model_dump(), **REQUIRED.get(name, {}))
    papp = processor.build(settings)
    expected = "--".join(sorted(prefixed.topic(t) for t in STORES[name]))
    assert expected in papp.streams, f"{name}: store {expected!r} not among {papp.streams}"
