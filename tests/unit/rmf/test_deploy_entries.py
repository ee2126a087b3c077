"""The Open-RMF processors are deployable everywhere the others are: Helm values, compose (profile rmf),
`fleet up --with-rmf`, and their settings read what those set."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.processors import PROCESSORS

ROOT = Path(__file__).resolve().parents[3]
RMF_PROCESSORS = ("rmf-ingest", "sink-rmf")


def _fields(processor: str) -> set[str]:
    settings = PROCESSORS[processor].settings
    return {f"FLEET_{name.upper()}" for name in settings.model_fields}


@pytest.mark.parametrize("processor", RMF_PROCESSORS)
def test_rmf_processors_are_optional_everywhere(processor: str) -> None:
    assert processor in PROCESSORS
    values = yaml.safe_load((ROOT / "deploy/helm/fleetstream/values.yaml").read_text())["processors"]
    assert values[processor]["enabled"] is False
    assert PROCESSORS[processor].optional == "with_rmf"
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][processor]
    assert service["profiles"] == ["rmf"] and service["command"] == ["run", processor]
    assert set(service["environment"]) <= _fields(processor)


def test_rmf_ingest_settings_need_tenant_and_site() -> None:
    from pipelines.processors.rmf_ingest import Settings

    with pytest.raises(ValueError, match="rmf_tenant_id"):
        Settings(rmf_site_id="s1", _env_file=None)  # type: ignore[call-arg]
    settings = Settings(  # type: ignore[call-arg]
        rmf_tenant_id="t1", rmf_site_id="s1", rmf_fleet_sites={"f": "s2"}, rmf_heartbeat_s=5
    )
    config = settings.ingest_config()
    assert (config.site_of("f"), config.site_of("g"), config.heartbeat_ms) == ("s2", "s1", 5000)
