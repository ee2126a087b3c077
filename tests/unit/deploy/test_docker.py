"""The Dockerfile and docker-compose.yml, checked statically: no Docker engine runs these tests.

They check what can drift: the image's user, state dir and ports against the chart; the packages
the image copies against pyproject; compose's services, versions and ports against the chart's
processors, the local stack (deploy/local/stack.sh) and the settings classes.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib

import pytest
import yaml

from .conftest import ROOT, enabled_in_values, env_names, load_values, settings_class

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
STACK = ROOT / "deploy" / "local" / "stack.sh"
INFRA = {"kafka", "registry", "postgres", "redis", "influxdb", "mosquitto"}
IMAGES = {
    "kafka": "apache/kafka:4.1.1",
    "registry": "apicurio/apicurio-registry:3.0.9",
    "postgres": "postgres:15",
    "redis": "redis:7",
    "influxdb": "influxdb:1.8",
    "mosquitto": "eclipse-mosquitto:2",
}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def copied_sources() -> set[str]:
    """What the Dockerfile copies from the build context (every COPY source, not --from=stage)."""
    return {
        source
        for word, args in instructions()
        if word == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    }


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


# ------------------------------------------------------------------------------------------ Dockerfile


def test_image_is_multi_stage_on_python_311_slim() -> None:
    steps = instructions()
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    froms = [a for w, a in steps if w == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    copies = [a for w, a in final_stage() if w == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]  # the runtime gets the virtualenv only


def test_image_runs_fleet_as_the_chart_user_with_the_chart_state_dir_and_ports() -> None:
    values = load_values()
    stage = final_stage()
    users = [a for w, a in stage if w == "USER"]
    security = values["podSecurityContext"]
    assert users[-1] == f"{security['runAsUser']}:{security['runAsGroup']}"
    assert json.loads([a for w, a in stage if w == "ENTRYPOINT"][-1]) == ["fleet"]
    env = " ".join(a for w, a in stage if w == "ENV")
    assert f"FLEET_STATE_DIR={values['stateDir']}" in env
    exposed = {int(p) for w, a in stage if w == "EXPOSE" for p in a.split()}
    ports = {values["metrics"]["port"]}
    for processor in values["processors"].values():
        ports |= {p["containerPort"] for p in (processor or {}).get("ports", [])}
    assert exposed == ports


def test_image_copies_every_package_the_wheel_contains() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = copied_sources()
    assert packages <= copied, f"the Dockerfile does not COPY {sorted(packages - copied)}"
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= copied


def test_dockerignore_keeps_the_build_inputs_and_drops_local_state() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".git", ".venv", ".local", "tests"} <= set(patterns)
    for path in copied_sources():
        assert not any(fnmatch.fnmatch(path, p) for p in patterns), (
            f"{path} is copied but .dockerignore drops it"
        )


# ------------------------------------------------------------------------------------------ compose


def test_compose_runs_the_local_stack_versions_on_the_local_stack_ports(compose: dict) -> None:
    services = compose["services"]
    assert "version" not in compose  # obsolete in the Compose specification
    assert {name: services[name]["image"] for name in INFRA} == IMAGES
    stack = STACK.read_text()
    assert f'KAFKA_VERSION="{IMAGES["kafka"].split(":")[1]}"' in stack
    assert f'APICURIO_VERSION="{IMAGES["registry"].split(":")[1]}"' in stack
    defaults = {
        "kafka": "KAFKA_PORT",
        "registry": "REGISTRY_PORT",
        "postgres": "POSTGRES_PORT",
        "redis": "REDIS_PORT",
        "influxdb": "INFLUX_PORT",
        "mosquitto": "MQTT_PORT",
    }
    for name, variable in defaults.items():
        local_port = re.search(rf'^{variable}="\$\{{FLEET_{variable}:-(\d+)\}}"', stack, re.M)
        if local_port is None:  # stack.sh names some variables differently from their env override
            local_port = re.search(rf'^{variable}="\$\{{FLEET_\w+:-(\d+)\}}"', stack, re.M)
        assert local_port, variable
        (published,) = services[name]["ports"]
        assert published.startswith(f"127.0.0.1:{local_port.group(1)}:"), name


def test_compose_keeps_redis_data_like_the_local_stack(compose: dict) -> None:
    """The hot views survive a Redis restart (append-only file on a volume), as in deploy/local/stack.sh."""
    redis = compose["services"]["redis"]
    assert (
        "--appendonly" in redis["command"]
        and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    )
    assert any(v.split(":")[0] in compose["volumes"] and v.endswith(":/data") for v in redis["volumes"])


def test_compose_runs_every_processor_the_chart_enables(compose: dict) -> None:
    services = compose["services"]
    for name in enabled_in_values() | {"planner"}:
        service = services[name]
        assert service["command"] == ["run", name]
        assert service["image"] == services["provision"]["image"]
        assert service["depends_on"]["provision"] == {"condition": "service_completed_successfully"}
        assert service["read_only"] is True
        state_dir = service["environment"]["FLEET_STATE_DIR"]
        assert any(t.split(":")[0] == state_dir for t in service["tmpfs"])


def test_compose_provisions_like_the_chart_hook(compose: dict) -> None:
    script = compose["services"]["provision"]["command"][0]
    steps = [line.strip() for line in script.splitlines() if line.strip().startswith("fleet ")]
    assert steps == ["fleet topics apply", "fleet schemas register", "fleet db migrate"]


def test_compose_dependencies_exist_and_wait_for_health(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, condition in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target}, which has no healthcheck"
                )
    published = [p.split(":")[1] for s in services.values() for p in s.get("ports", [])]
    assert len(published) == len(set(published))


@pytest.mark.parametrize("processor", sorted(enabled_in_values() | {"planner"}))
def test_compose_env_names_are_fields_of_the_processor_settings(compose: dict, processor: str) -> None:
    cls = settings_class(processor)
    if cls is None:
        pytest.fail(
            f"pipelines/processors/{processor}.py does not exist: compose runs a processor the code lacks"
        )
    env = set(compose["services"][processor]["environment"])
    assert env <= env_names(cls), sorted(env - env_names(cls))
