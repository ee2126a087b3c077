"""How Apicurio 3.x ccompat assigns ids, and that our client's ids resolve and are cached."""

from __future__ import annotations

import uuid

import httpx

from schemas.avsc import load_schema
from schemas.registry import RegistryClient, canonical_schema_text


def _unique_record() -> dict:
    return {
        "type": "record",
        "name": f"Probe{uuid.uuid4().hex[:8]}",
        "namespace": "io.fleetstream.test",
        "fields": [{"name": "a", "type": "string"}],
    }


def test_registered_id_is_what_schemas_ids_resolves(registry: RegistryClient, subject: str) -> None:
    schema = _unique_record()
    schema_id = registry.register(subject, schema)
    # straight HTTP, no cache: GET /schemas/ids/{id} answers with exactly our schema
    answer = httpx.get(f"{registry.url}/schemas/ids/{schema_id}").json()
    assert canonical_schema_text(answer["schema"]) == canonical_schema_text(schema)
    latest = registry.latest(subject)
    assert latest is not None and latest["id"] == schema_id and latest["version"] == 1


def test_ids_are_content_ids_shared_across_subjects(registry: RegistryClient) -> None:
    schema = _unique_record()
    first = registry.register(f"t{uuid.uuid4().hex[:10]}.a-value", schema)
    second = registry.register(f"t{uuid.uuid4().hex[:10]}.b-value", schema)
    assert first == second  # content id: one id per distinct schema text, whatever the subject


def test_new_version_gets_new_id_that_resolves(registry: RegistryClient, subject: str) -> None:
    v1 = _unique_record()
    v2 = {**v1, "fields": [*v1["fields"], {"name": "b", "type": ["null", "string"], "default": None}]}
    id1 = registry.register(subject, v1)
    id2 = registry.register(subject, v2)
    assert id1 != id2
    assert registry.versions(subject) == [1, 2]
    fresh = RegistryClient(registry.url)  # no cache
    assert canonical_schema_text(fresh.schema_by_id(id1) or "") == canonical_schema_text(v1)
    assert canonical_schema_text(fresh.schema_by_id(id2) or "") == canonical_schema_text(v2)
    fresh.close()


def test_one_http_call_per_subject_and_per_id(registry: RegistryClient, subject: str) -> None:
    schema = load_schema("RobotTelemetry")
    calls = registry.http_calls
    schema_id = registry.register(subject, schema)
    for _ in range(5):
        assert registry.register(subject, schema) == schema_id
        assert registry.lookup(subject, schema) == schema_id
        assert registry.schema_by_id(schema_id) is not None
    assert registry.http_calls == calls + 1

    other = RegistryClient(registry.url)
    assert other.lookup(subject, schema) == schema_id
    assert other.schema_by_id(schema_id) is not None
    assert other.http_calls == 1  # the lookup answer seeds the id -> schema cache
    other.close()


def test_lookup_never_registers(registry: RegistryClient, subject: str) -> None:
    assert registry.lookup(subject, _unique_record()) is None
    assert registry.versions(subject) == []
    assert registry.schema_by_id(2_000_000_000) is None


def test_compatibility_per_subject(registry: RegistryClient, subject: str) -> None:
    assert registry.get_compatibility(subject) is None
    assert registry.set_compatibility("FULL_TRANSITIVE", subject) == "FULL_TRANSITIVE"
    assert registry.get_compatibility(subject) == "FULL_TRANSITIVE"
