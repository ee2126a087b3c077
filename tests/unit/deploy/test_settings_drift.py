"""Helm and code cannot drift: every FLEET_* name the chart sets is a settings field of the process that
reads it, every CommonSettings field has a Helm value, and the chart knows every processor and topic."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pipelines.processors import PROCESSORS
from pipelines.settings import CommonSettings
from schemas import catalog

from .conftest import (
    ALL_FEATURES,
    CHART,
    FULLNAME,
    Manifests,
    by_kind,
    component,
    container,
    deployments,
    env_names,
    load_values,
    settings_class,
)


def pod_env(manifests: Manifests, deployment: dict) -> set[str]:
    """Every env name a processor's container gets: its two ConfigMaps, secret refs and extra env."""
    c = container(deployment)
    names: set[str] = set()
    for source in c["envFrom"]:
        names |= set(by_kind(manifests, "ConfigMap")[source["configMapRef"]["name"]].get("data") or {})
    names |= {e["name"] for e in c.get("env", [])}
    return names


@pytest.fixture(scope="module")
def everything(render: Callable[..., Manifests]) -> Manifests:
    """Every processor of values.yaml enabled, every optional setting set."""
    enable = [f"processors.{name}.enabled=true" for name in load_values()["processors"]]
    return render(sets=[*ALL_FEATURES, *enable])


def test_common_configmap_sets_only_common_settings_and_all_of_them(everything: Manifests) -> None:
    common = set(by_kind(everything, "ConfigMap")[FULLNAME]["data"])
    fields = env_names(CommonSettings)
    unknown = common - fields
    assert not unknown, f"the chart sets {sorted(unknown)}, which CommonSettings does not read"
    secrets = {"FLEET_KAFKA_SASL_PASSWORD", "FLEET_SCHEMA_REGISTRY_PASSWORD"}
    for deployment in by_kind(everything, "Deployment").values():
        assert secrets <= {e["name"] for e in container(deployment)["env"]}
    missing = fields - common - secrets
    assert not missing, (
        f"CommonSettings fields {sorted(missing)} have no Helm value: add them to values.yaml and to "
        "fleetstream.commonEnv in templates/_helpers.tpl (env names map one-to-one onto Helm values)"
    )


@pytest.mark.parametrize("processor", sorted(load_values()["processors"]))
def test_processor_env_names_are_fields_of_its_settings(everything: Manifests, processor: str) -> None:
    cls = settings_class(processor)
    if cls is None:
        pytest.fail(
            f"pipelines/processors/{processor}.py does not exist: the chart deploys a processor the code lacks"
        )
    assert issubclass(cls, CommonSettings)
    deployment = deployments(everything)[processor]
    unknown = pod_env(everything, deployment) - env_names(cls)
    assert not unknown, (
        f"the chart gives processor {processor} {sorted(unknown)}, which {cls.__module__}.{cls.__name__} "
        "does not read (renamed setting? fix values.yaml `env`/`uses` or the settings class)"
    )


def test_production_values_set_only_known_settings(production_manifests: Manifests) -> None:
    for deployment in by_kind(production_manifests, "Deployment").values():
        cls = settings_class(component(deployment))
        if cls is not None:
            assert pod_env(production_manifests, deployment) <= env_names(cls), component(deployment)


def test_provisioning_job_env_is_what_the_cli_reads(render: Callable[..., Manifests]) -> None:
    """topics apply and schemas register read CommonSettings; db migrate the Postgres sink's Settings."""
    manifests = render(sets=[*ALL_FEATURES, "processors.sink-postgres.env.FLEET_POSTGRES_SCHEMA=fleet"])
    (job,) = by_kind(manifests, "Job").values()
    pod = job["spec"]["template"]["spec"]
    steps = {
        c["name"]: {e["name"]: e for e in c["env"]} for c in [*pod["initContainers"], *pod["containers"]]
    }
    for name in ("topics-apply", "schemas-register"):
        assert set(steps[name]) <= env_names(CommonSettings), name
    sink = settings_class("sink-postgres")
    assert sink is not None
    assert set(steps["db-migrate"]) <= env_names(sink)
    assert steps["db-migrate"]["FLEET_POSTGRES_SCHEMA"]["value"] == "fleet"  # where the sink writes


def test_every_processor_module_has_a_chart_entry() -> None:
    missing = set(PROCESSORS) - set(load_values()["processors"])
    assert not missing, f"processors {sorted(missing)} have no entry under `processors:` in values.yaml"
    unknown = set(load_values()["processors"]) - set(PROCESSORS)
    assert not unknown, f"values.yaml deploys {sorted(unknown)}, which are not in PROCESSORS"


def test_dead_letter_topics_are_those_of_the_processors() -> None:
    assert set(catalog.DLQ_PROCESSORS) == {p.name for p in PROCESSORS.values() if p.dead_letters}


def test_topic_overrides_accepted_by_the_schema_are_the_catalog() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    allowed = set(schema["properties"]["topics"]["properties"]["partitions"]["propertyNames"]["enum"])
    names = {t.name for t in catalog.CATALOG}
    groups = {t.copartition for t in catalog.CATALOG if t.copartition}
    assert allowed == names | groups, (
        "values.schema.json topics.partitions names differ from schemas/catalog.py: "
        f"missing {sorted(names | groups - allowed)}, unknown {sorted(allowed - names - groups)}"
    )


def test_production_partition_overrides_satisfy_the_catalog() -> None:
    """The catalog refuses unequal co-partitioned topics; the chart's production overrides must pass it."""
    import yaml

    from .conftest import PRODUCTION_VALUES

    overrides = yaml.safe_load(PRODUCTION_VALUES.read_text())["topics"]["partitions"]
    resolved = {t.base_name: t.partitions for t in catalog.topics(partitions=overrides)}
    assert resolved["robot.telemetry"] == overrides["robot"]
