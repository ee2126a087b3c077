"""Fixtures for the deployment tests: a real helm (built once by deploy/helm/install-helm.sh) and renders.

Nothing here needs a cluster or a running service. helm runs with its cache, config and data homes in a
temporary directory, so the tests touch nothing of the user's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings

from pipelines.processors import PROCESSORS

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "fleetstream"
PRODUCTION_VALUES = ROOT / "deploy" / "helm" / "values-production.yaml"
INSTALL_HELM = ROOT / "deploy" / "helm" / "install-helm.sh"
HELM = ROOT / ".local" / "bin" / "helm"
RELEASE = "fs"
NAMESPACE = "fleet"
# The Kubernetes version the manifests are validated against (helm v3.19 is built for 1.34).
KUBE_VERSION = "1.34.0"
# Building helm cold takes minutes (about 4 on 2 idle cores); pytest-timeout's 300 s would cut it.
INSTALL_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use helm may build it first: give them the install's time limit."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and "helm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(INSTALL_TIMEOUT_S))


@dataclass(frozen=True)
class Helm:
    binary: Path
    env: dict[str, str]

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *map(str, args)], env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            pytest.fail(f"helm {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr}")
        return result

    def template_args(
        self, values: Iterable[Path] = (), sets: Iterable[str] = (), chart: Path = CHART
    ) -> list[str | Path]:
        args: list[str | Path] = ["template", RELEASE, chart, "--namespace", NAMESPACE]
        args += ["--kube-version", KUBE_VERSION]
        for path in values:
            args += ["--values", path]
        for item in sets:
            args += ["--set", item]
        return args


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm from .local/bin, installed by deploy/helm/install-helm.sh (cached; cold it builds from Go)."""
    result = subprocess.run(
        ["bash", str(INSTALL_HELM)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, cwd=ROOT
    )
    if result.returncode != 0 or not HELM.exists():
        pytest.fail(
            f"deploy/helm/install-helm.sh failed (exit {result.returncode}); the deploy tests need helm:\n"
            f"{result.stdout}{result.stderr}",
            pytrace=False,
        )
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }
    return Helm(HELM, env)


Manifests = list[dict]


@pytest.fixture(scope="session")
def render(helm: Helm) -> Callable[..., Manifests]:
    """``render(values=[...], sets=[...])``: the manifests of ``helm template``, parsed; fails on an error."""
    cache: dict[tuple, Manifests] = {}

    def _render(values: Iterable[Path] = (), sets: Iterable[str] = ()) -> Manifests:
        key = (tuple(values), tuple(sets))
        if key not in cache:
            out = helm.run(*helm.template_args(values, sets)).stdout
            cache[key] = [doc for doc in yaml.safe_load_all(out) if doc]
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def default_manifests(render: Callable[..., Manifests]) -> Manifests:
    return render()


@pytest.fixture(scope="session")
def production_manifests(render: Callable[..., Manifests]) -> Manifests:
    return render(values=[PRODUCTION_VALUES])


def by_kind(manifests: Manifests, kind: str) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def component(manifest: dict) -> str:
    return manifest["metadata"]["labels"]["app.kubernetes.io/component"]


def load_values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


FULLNAME = f"{RELEASE}-fleetstream"
# Every optional feature on, so that every template is validated.
ALL_FEATURES = [
    "processors.sink-rmf.enabled=true",
    "processors.planner.enabled=true",
    "processors.gateway.ingress.enabled=true",
    "processors.gateway.ingress.hosts[0].host=fleet.example.com",
    "processors.tasks.autoscaling.enabled=true",
    "processors.tasks.autoscaling.targetMemoryUtilizationPercentage=80",
    "processors.tasks.podDisruptionBudget.minAvailable=1",
    "processors.timers.startupProbe.tcpSocket.port=metrics",
    "metrics.podMonitor.enabled=true",
    "kafka.securityProtocol=SASL_SSL",
    "kafka.saslMechanism=SCRAM-SHA-512",
    "kafka.saslUsername=fleet",
    "kafka.saslPassword=kafka-password",
    "kafka.sslCa.secretName=kafka-ca",
    "schemaRegistry.username=fleet",
    "schemaRegistry.password=registry-password",
    "schemaRegistry.ca.secretName=registry-ca",
    "influx.username=fleet",
    "influx.password=influx-password",
    "topics.partitions.robot=12",
    "topics.replicationFactor=3",
    "topics.minInsyncReplicas=2",
]


def enabled_in_values() -> set[str]:
    """Processors values.yaml enables."""
    values = load_values()
    default = values["processorDefaults"]["enabled"]
    return {name for name, p in values["processors"].items() if (p or {}).get("enabled", default)}


def deployments(manifests: Manifests) -> dict[str, dict]:
    """Deployments by processor (component) name."""
    return {component(d): d for d in by_kind(manifests, "Deployment").values()}


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def config_map(manifests: Manifests, name: str) -> dict[str, str]:
    return by_kind(manifests, "ConfigMap")[name].get("data") or {}


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The FLEET_* names a settings class reads."""
    prefix = cls.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in cls.model_fields}


def settings_class(processor: str) -> type[BaseSettings] | None:
    """The Settings of processor ``processor`` (``pipelines.processors.PROCESSORS``), or None when the
    code has no such processor."""
    found = PROCESSORS.get(processor)
    return found.settings if found is not None else None
