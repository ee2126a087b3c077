"""The Helm chart: lint, render, validate against the Kubernetes schemas, and behave as values say."""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from .conftest import (
    ALL_FEATURES,
    CHART,
    FULLNAME,
    KUBE_VERSION,
    NAMESPACE,
    PRODUCTION_VALUES,
    Helm,
    Manifests,
    by_kind,
    config_map,
    container,
    deployments,
    enabled_in_values,
)

# Kinds of CRDs the chart may render; kubernetes-validate ships no schema for them.
CRD_KINDS = {"PodMonitor"}


# ------------------------------------------------------------------------------------------ lint/render


@pytest.mark.parametrize("values", [[], [PRODUCTION_VALUES]], ids=["default", "production"])
def test_helm_lint_passes_strictly(helm: Helm, values: list[Path]) -> None:
    args: list[str | Path] = ["lint", CHART, "--strict", "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["--values", path]
    result = helm.run(*args)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_default_render_has_one_deployment_per_enabled_processor(default_manifests: Manifests) -> None:
    wanted = set(enabled_in_values())
    assert set(deployments(default_manifests)) == wanted
    for name, deployment in deployments(default_manifests).items():
        assert deployment["metadata"]["name"] == f"{FULLNAME}-{name}"
        assert container(deployment)["args"][:2] == ["run", name]
    kinds = {m["kind"] for m in default_manifests}
    assert kinds == {
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "Job",
    }


@pytest.mark.parametrize(
    ("values", "sets"),
    [([], []), ([PRODUCTION_VALUES], []), ([], ALL_FEATURES)],
    ids=["default", "production", "all-features"],
)
def test_every_manifest_validates_against_the_kubernetes_schemas(
    render: Callable[..., Manifests], values: list[Path], sets: list[str]
) -> None:
    manifests = render(values=values, sets=sets)
    assert manifests
    for manifest in manifests:
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        assert manifest["metadata"].get("namespace") == NAMESPACE, where
        if manifest["kind"] in CRD_KINDS:
            assert manifest["apiVersion"] == "monitoring.coreos.com/v1", where
            assert manifest["spec"]["selector"]["matchLabels"], where
            continue
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} is not a valid Kubernetes {KUBE_VERSION} object: {exc.message}")


def undocumented_values(text: str) -> list[str]:
    """Leaf keys of a values file with no `# --` comment on them or on an enclosing key."""
    missing = []
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    commented = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            commented = commented or stripped.startswith("# --") if stripped else False
            continue
        match = re.match(r"^(\s*)(- )?([\w.\"/-]+):(.*)$", line)
        if match:
            indent = len(match.group(1)) + (2 if match.group(2) else 0)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            # A list item's keys are documented by the list.
            documented = commented or bool(match.group(2)) or any(d for _, d in stack)
            if match.group(4).strip() and not documented:
                missing.append(f"line {number}: {stripped}")
            stack.append((indent, documented))
        commented = False
    return missing


def test_every_value_is_documented() -> None:
    assert undocumented_values((CHART / "values.yaml").read_text()) == []
    assert undocumented_values("a:\n  # -- yes\n  b: 1\n  c: 2\n") == ["line 4: c: 2"]


# ------------------------------------------------------------------------------------------ processors


def test_every_processor_has_liveness_and_readiness_probes_on_a_declared_port(
    default_manifests: Manifests,
) -> None:
    metrics_port = int(config_map(default_manifests, FULLNAME)["FLEET_METRICS_PORT"])
    for name, deployment in deployments(default_manifests).items():
        c = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
        if name == "gateway":
            assert (live["path"], ready["path"]) == ("/healthz", "/readyz")
            assert live["port"] == ready["port"] == "http"
            assert "metrics" not in ports  # the gateway serves /metrics itself
            own = config_map(default_manifests, f"{FULLNAME}-gateway")
            assert own["FLEET_METRICS_PORT"] == "0"
            assert own["FLEET_HTTP_PORT"] == str(ports["http"])
            assert own["FLEET_HTTP_HOST"] == "0.0.0.0"
        else:
            assert live == ready == {"path": "/metrics", "port": "metrics"}, name
            assert ports["metrics"] == metrics_port, name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(ports.get("metrics", ports.get("http")))


def test_pods_run_as_non_root_with_a_read_only_root_and_state_on_an_empty_dir(
    default_manifests: Manifests,
) -> None:
    state_dir = config_map(default_manifests, FULLNAME)["FLEET_STATE_DIR"]
    job = next(iter(by_kind(default_manifests, "Job").values()))
    pods = [d["spec"]["template"]["spec"] for d in by_kind(default_manifests, "Deployment").values()]
    for pod in [*pods, job["spec"]["template"]["spec"]]:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]
    for pod in pods:
        (c,) = pod["containers"]
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}[mounts[state_dir]]


def test_a_processor_is_one_values_entry(render: Callable[..., Manifests]) -> None:
    """A new gRPC processor: Deployment, ConfigMap with its port setting, Service, gRPC probes."""
    manifests = render(
        sets=[
            "processors.solver.replicas=3",
            "processors.solver.ports[0].name=grpc",
            "processors.solver.ports[0].containerPort=50051",
            "processors.solver.ports[0].env=FLEET_SOLVER_PORT",
            "processors.solver.livenessProbe.grpc.port=50051",
            "processors.solver.readinessProbe.grpc.port=50051",
            "processors.solver.service.enabled=true",
            "processors.solver.env.FLEET_SOLVER_DEADLINE_MS=200",
        ]
    )
    solver = deployments(manifests)["solver"]
    c = container(solver)
    assert solver["spec"]["replicas"] == 3
    assert c["args"] == ["run", "solver"]
    assert c["livenessProbe"] == {"grpc": {"port": 50051}}
    assert {p["name"] for p in c["ports"]} == {"metrics", "grpc"}
    assert config_map(manifests, f"{FULLNAME}-solver") == {
        "FLEET_SOLVER_PORT": "50051",
        "FLEET_SOLVER_DEADLINE_MS": "200",
    }
    service = by_kind(manifests, "Service")[f"{FULLNAME}-solver"]
    assert service["spec"]["ports"] == [
        {"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}
    ]
    assert f"{FULLNAME}-solver" in by_kind(manifests, "PodDisruptionBudget")


def test_disabled_processor_renders_nothing(render: Callable[..., Manifests]) -> None:
    manifests = render(sets=["processors.sink-influx.enabled=false"])
    names = {m["metadata"]["name"] for m in manifests}
    assert not {n for n in names if n.endswith("sink-influx")}


def test_autoscaled_processors_leave_replicas_to_the_hpa(production_manifests: Manifests) -> None:
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h
        for h in by_kind(production_manifests, "HorizontalPodAutoscaler").values()
    }
    assert set(hpas) == {f"{FULLNAME}-{n}" for n in ("telemetry", "tasks", "gateway")}
    for name, deployment in by_kind(production_manifests, "Deployment").items():
        if name in hpas:
            assert "replicas" not in deployment["spec"]
        else:
            assert deployment["spec"]["replicas"] >= 1
    telemetry = hpas[f"{FULLNAME}-telemetry"]["spec"]
    assert (telemetry["minReplicas"], telemetry["maxReplicas"]) == (3, 24)
    assert telemetry["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}


def test_every_deployment_has_a_disruption_budget_selecting_its_pods(production_manifests: Manifests) -> None:
    budgets = by_kind(production_manifests, "PodDisruptionBudget")
    for name, deployment in by_kind(production_manifests, "Deployment").items():
        assert budgets[name]["spec"]["selector"] == deployment["spec"]["selector"]
        assert budgets[name]["spec"]["maxUnavailable"] == 1


def test_gateway_service_and_ingress_route_to_the_http_port(production_manifests: Manifests) -> None:
    gateway = f"{FULLNAME}-gateway"
    service = by_kind(production_manifests, "Service")[gateway]
    assert (
        service["spec"]["selector"]
        == by_kind(production_manifests, "Deployment")[gateway]["spec"]["selector"]["matchLabels"]
    )
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    ingress = by_kind(production_manifests, "Ingress")[gateway]["spec"]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": gateway, "port": {"name": "http"}}
    assert ingress["tls"][0]["hosts"] == ["fleet.example.com"]


def test_topology_spread_constraints_select_their_own_processor(production_manifests: Manifests) -> None:
    for deployment in by_kind(production_manifests, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        keys = [c["topologyKey"] for c in pod["topologySpreadConstraints"]]
        assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
        assert all(c["labelSelector"]["matchLabels"] == selector for c in pod["topologySpreadConstraints"])


# ------------------------------------------------------------------------------------------ config


def _annotations(manifests: Manifests) -> dict[str, dict[str, str]]:
    return {n: d["spec"]["template"]["metadata"]["annotations"] for n, d in deployments(manifests).items()}


def test_config_checksums_roll_exactly_the_pods_whose_settings_changed(
    render: Callable[..., Manifests],
) -> None:
    base = _annotations(render())
    assert base == _annotations(render())  # deterministic, despite the generated JWT secret

    common = _annotations(render(sets=["logLevel=DEBUG"]))
    assert all(common[n]["checksum/config"] != base[n]["checksum/config"] for n in base)

    own = _annotations(render(sets=["processors.gateway.env.FLEET_RATE_LIMIT_REQUESTS=10"]))
    changed = {n for n in base if own[n]["checksum/config"] != base[n]["checksum/config"]}
    assert changed == {"gateway"}

    secret = _annotations(render(sets=["postgres.dsn=postgresql://fleet:s3cret@db:5432/fleetstream"]))
    changed = {n for n in base if secret[n]["checksum/secret"] != base[n]["checksum/secret"]}
    assert changed == {"gateway", "sink-postgres"}
    assert all(secret[n]["checksum/config"] == base[n]["checksum/config"] for n in base)


def test_settings_reach_the_pods_through_configmaps_and_the_secret(default_manifests: Manifests) -> None:
    common = config_map(default_manifests, FULLNAME)
    assert common["FLEET_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert common["FLEET_SCHEMA_REGISTRY_URL"].endswith("/apis/ccompat/v7")
    secret = by_kind(default_manifests, "Secret")[FULLNAME]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(data) == {
        "FLEET_POSTGRES_DSN",
        "FLEET_POSTGRES_READER_DSN",
        "FLEET_REDIS_URL",
        "FLEET_JWT_SECRET",
    }
    assert data["FLEET_POSTGRES_READER_DSN"] == data["FLEET_POSTGRES_DSN"]  # no reader role given
    assert len(data["FLEET_JWT_SECRET"]) == 48  # generated: never a placeholder
    for name, deployment in deployments(default_manifests).items():
        c = container(deployment)
        assert [ref["configMapRef"]["name"] for ref in c["envFrom"]] == [FULLNAME, f"{FULLNAME}-{name}"]
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env", []) if "valueFrom" in e}
        assert all(ref["name"] == FULLNAME for ref in refs.values())
        expected = {
            "gateway": {
                "FLEET_POSTGRES_DSN": "FLEET_POSTGRES_READER_DSN",
                "FLEET_REDIS_URL": "FLEET_REDIS_URL",
                "FLEET_JWT_SECRET": "FLEET_JWT_SECRET",
            },
            "sink-postgres": {"FLEET_POSTGRES_DSN": "FLEET_POSTGRES_DSN"},
            "sink-redis": {"FLEET_REDIS_URL": "FLEET_REDIS_URL"},
        }.get(name, {})
        assert {env: ref["key"] for env, ref in refs.items()} == expected, name


def test_env_values_render_as_written(render: Callable[..., Manifests], tmp_path: Path) -> None:
    """YAML numbers reach Helm as floats; a large whole number must not become 1e+06."""
    values = tmp_path / "numbers.yaml"
    env = {"FLEET_A": 1000000, "FLEET_B": 0.25, "FLEET_C": True, "FLEET_D": "text"}
    values.write_text(yaml.safe_dump({"processors": {"timers": {"env": env}}}))
    data = config_map(render(values=[values]), f"{FULLNAME}-timers")
    assert data == {"FLEET_A": "1000000", "FLEET_B": "0.25", "FLEET_C": "true", "FLEET_D": "text"}


def test_the_gateway_reads_postgres_as_the_reader_role(render: Callable[..., Manifests]) -> None:
    reader = "postgresql://reader:r@db:5432/fleetstream"
    manifests = render(sets=[f"postgres.readerDsn={reader}"])
    data = by_kind(manifests, "Secret")[FULLNAME]["data"]
    assert base64.b64decode(data["FLEET_POSTGRES_READER_DSN"]).decode() == reader
    assert base64.b64decode(data["FLEET_POSTGRES_DSN"]).decode() != reader


def test_existing_secret_replaces_the_chart_secret(production_manifests: Manifests) -> None:
    assert not by_kind(production_manifests, "Secret")
    gateway = container(deployments(production_manifests)["gateway"])
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in gateway["env"]}
    assert {ref["name"] for ref in refs.values()} == {"fleetstream-secrets"}
    assert {env: ref["key"] for env, ref in refs.items()} == {
        "FLEET_KAFKA_SASL_PASSWORD": "FLEET_KAFKA_SASL_PASSWORD",
        "FLEET_SCHEMA_REGISTRY_PASSWORD": "FLEET_SCHEMA_REGISTRY_PASSWORD",
        "FLEET_POSTGRES_DSN": "FLEET_POSTGRES_READER_DSN",
        "FLEET_REDIS_URL": "FLEET_REDIS_URL",
        "FLEET_INFLUX_PASSWORD": "FLEET_INFLUX_PASSWORD",
    }  # jwks mode: no FLEET_JWT_SECRET
    ca = config_map(production_manifests, FULLNAME)["FLEET_KAFKA_SSL_CA_LOCATION"]
    mounts = {m["name"]: m["mountPath"] for m in gateway["volumeMounts"]}
    assert ca == f"{mounts['kafka-ca']}/ca.crt"


# ------------------------------------------------------------------------------------------ provisioning


def test_provisioning_job_runs_topics_schemas_migrations_before_install_and_upgrade(
    production_manifests: Manifests,
) -> None:
    (job,) = by_kind(production_manifests, "Job").values()
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    pod = job["spec"]["template"]["spec"]
    steps = [*pod["initContainers"], *pod["containers"]]
    assert [c["name"] for c in steps] == ["topics-apply", "schemas-register", "db-migrate"]
    topics_args = steps[0]["args"]
    assert topics_args[:2] == ["topics", "apply"]
    overrides = [topics_args[i + 1] for i, a in enumerate(topics_args) if a == "--partitions"]
    assert sorted(overrides) == ["robot=24", "site=6", "task=12", "timers=12"]
    assert topics_args[topics_args.index("--replication-factor") + 1] == "3"
    assert topics_args[topics_args.index("--min-insync-replicas") + 1] == "2"
    assert "--increase-partitions" not in topics_args
    assert steps[1]["args"] == ["schemas", "register"]
    assert steps[2]["args"] == ["db", "migrate"]
    for step in steps:
        secrets = {e["name"] for e in step["env"] if "valueFrom" in e}
        needs_db = {"FLEET_POSTGRES_DSN"} if step["name"] == "db-migrate" else set()
        assert secrets == {"FLEET_KAFKA_SASL_PASSWORD", "FLEET_SCHEMA_REGISTRY_PASSWORD"} | needs_db


def test_provisioning_gets_a_hook_secret_created_before_the_job(default_manifests: Manifests) -> None:
    hook_secret = by_kind(default_manifests, "Secret").get(f"{FULLNAME}-provision")
    (job,) = by_kind(default_manifests, "Job").values()
    assert hook_secret is not None
    assert (
        hook_secret["metadata"]["annotations"]["helm.sh/hook"]
        == job["metadata"]["annotations"]["helm.sh/hook"]
    )
    weight = int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert set(hook_secret["data"]) == {"FLEET_POSTGRES_DSN"}


def test_provisioning_steps_can_be_switched_off(render: Callable[..., Manifests]) -> None:
    manifests = render(sets=["provisioning.migrations=false", "provisioning.schemas=false"])
    (job,) = by_kind(manifests, "Job").values()
    pod = job["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["topics-apply"]
    assert f"{FULLNAME}-provision" not in by_kind(manifests, "Secret")
    assert not by_kind(render(sets=["provisioning.enabled=false"]), "Job")


# ------------------------------------------------------------------------------------------ bad values

BROKEN = [
    (["processors.telemetry.replicas=-1"], None, "/processors/telemetry/replicas': minimum: got -1, want 0"),
    (["metrics.port=abc"], None, "/metrics/port': got string, want integer"),
    (["kafka.bootstrapServers=null"], None, "/kafka': missing property 'bootstrapServers'"),
    (["kafka.bootstrapServers="], None, "/kafka/bootstrapServers': minLength: got 0, want 1"),
    ([], {"image": {"tag": 1.2}}, "/image/tag': got number, want string"),
    (
        [],
        {"processors": {"gateway": {"ports": [{"name": "http", "containerPort": "8080"}]}}},
        "/processors/gateway/ports/0/containerPort': got string, want integer",
    ),
    (["processors.telemetry.replica=2"], None, "additional properties 'replica' not allowed"),
    (["topics.partitions.robots=3"], None, "invalid propertyName 'robots'"),
    (["topics.partitions.robot=0"], None, "/topics/partitions/robot': minimum: got 0, want 1"),
    (["kafka.securityProtocol=SASL_SSL"], None, "/kafka/saslMechanism': minLength: got 0, want 1"),
    (["auth.mode=jwks"], None, "/auth/jwksUrl': minLength: got 0, want 1"),
    (["environment=prod"], None, "/environment': value must be one of"),
    (["processors.gateway.env.HTTP_PORT=80"], None, "'HTTP_PORT' does not match pattern"),
]


@pytest.mark.parametrize(
    ("sets", "values", "message"), BROKEN, ids=[b[2].split("'")[0] or b[2] for b in BROKEN]
)
def test_broken_values_fail_template_and_lint_naming_the_value(
    helm: Helm, tmp_path: Path, sets: list[str], values: dict | None, message: str
) -> None:
    files = []
    if values is not None:
        files.append(tmp_path / "broken.yaml")
        files[0].write_text(yaml.safe_dump(values))
    result = helm.run(*helm.template_args(files, sets), check=False)
    assert result.returncode != 0
    assert message in result.stderr
    lint: list[str | Path] = ["lint", CHART, "--kube-version", KUBE_VERSION]
    for path in files:
        lint += ["--values", path]
    for item in sets:
        lint += ["--set", item]
    result = helm.run(*lint, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["kafka.securityProtocol=SASL_SSL", "kafka.saslMechanism=PLAIN", "kafka.saslUsername=u"],
            "kafka.saslPassword is required when kafka.securityProtocol is SASL_*",
        ),
        (["postgres.dsn="], "postgres.dsn is required"),
        (["processors.gateway.metricsPort=web"], 'processors.gateway.metricsPort: "web" is neither'),
        (["processors.gateway.ingress.enabled=true"], "processors.gateway.ingress.hosts: at least one host"),
        (
            [
                "processors.tasks.autoscaling.enabled=true",
                "processors.tasks.autoscaling.minReplicas=5",
                "processors.tasks.autoscaling.maxReplicas=2",
            ],
            "processors.tasks.autoscaling: maxReplicas (2) is below minReplicas (5)",
        ),
    ],
)
def test_inconsistent_values_fail_rendering_with_the_reason(
    helm: Helm, sets: list[str], message: str
) -> None:
    result = helm.run(*helm.template_args((), sets), check=False)
    assert result.returncode != 0
    assert message in result.stderr


# ------------------------------------------------------------------------------------------ notes


def test_install_notes_render_the_processors_and_how_to_reach_the_gateway(helm: Helm, tmp_path: Path) -> None:
    """NOTES.txt is only rendered by a real install; render it as a template of a copy of the chart."""
    chart = tmp_path / "fleetstream"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "notes-as-yaml.yaml").write_text(
        '{{- define "test.notes" -}}\n'
        + notes
        + "{{- end -}}\n"
        + 'notes: {{ include "test.notes" . | toJson }}\n'
    )
    out = helm.run(*helm.template_args(chart=chart), "--show-only", "templates/notes-as-yaml.yaml").stdout
    text = yaml.safe_load(out)["notes"]
    for name in enabled_in_values():
        assert f"deployment/{FULLNAME}-{name.replace('_', '-')}" in text
    assert f"port-forward svc/{FULLNAME}-gateway 8080:80" in text
    assert "FLEET_JWT_SECRET" in text
