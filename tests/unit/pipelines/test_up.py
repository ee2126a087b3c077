"""`fleet up` (make run) builds the right children from its arguments, without starting anything."""

from pipelines.cli import build_parser
from pipelines.commands.up import _children, _started_by_this_run


def _args(*argv: str):
    return build_parser().parse_args(["up", *argv])


def test_every_processor_but_the_optional_ones_plus_the_simulator():
    children = {c.name: c for c in _children(_args("--robots", "5", "--tenant", "t1", "--site", "s9"))}
    assert {
        "telemetry",
        "tasks",
        "dispatch",
        "traffic",
        "timers",
        "sink-postgres",
        "sink-influx",
        "sink-redis",
        "gateway",
        "planner",
        "simulator",
    } <= set(children)
    assert "sink-rmf" not in children, "sink-rmf needs an RMF server: only with --with-rmf"
    assert "rmf-ingest" not in children, "the RMF processors run only with --with-rmf"
    sim = children["simulator"].argv
    assert sim[sim.index("--tenant") + 1] == "t1"
    assert sim[sim.index("--site") + 1] == "s9"
    assert sim[sim.index("--robots") + 1] == "5"
    assert "--follow" in sim, "by default the simulated robots follow dispatch and traffic"
    assert float(sim[sim.index("--tasks-per-minute") + 1]) > 0
    assert children["gateway"].env["FLEET_HTTP_PORT"] == "8080"
    simulators = ("gateway", "simulator", "vda5050-simulator")
    ports = [c.env["FLEET_METRICS_PORT"] for n, c in children.items() if n not in simulators]
    assert len(set(ports)) == len(ports), "each processor gets its own metrics port"


def test_no_tasks_means_robots_wander_on_their_own():
    sim = {c.name: c for c in _children(_args("--tasks-per-minute", "0"))}["simulator"].argv
    assert "--follow" not in sim and "--tasks-per-minute" not in sim


def test_with_rmf_adds_the_rmf_sink_and_no_robots_means_no_simulator():
    children = {c.name: c for c in _children(_args("--with-rmf", "--robots", "0", "--tenant", "t1"))}
    assert {"sink-rmf", "rmf-ingest"} <= set(children)
    assert "simulator" not in children
    assert children["rmf-ingest"].env["FLEET_RMF_TENANT_ID"] == "t1"
    assert children["rmf-ingest"].env["FLEET_RMF_SITE_ID"] == "demo"
    assert children["gateway"].env["FLEET_RMF_WS_TOKEN"]


def test_instances_spread_the_kafka_processors_and_keep_each_instance_apart():
    children = {c.name: c for c in _children(_args("--instances", "2", "--instances", "tasks=3"))}
    assert {"telemetry.1", "telemetry.2", "tasks.1", "tasks.2", "tasks.3", "sink-postgres.2"} <= set(children)
    assert "gateway" in children and "gateway.2" not in children, "the gateway scales by --workers"
    assert "planner" in children and "planner.2" not in children
    tasks = [children[f"tasks.{i}"] for i in (1, 2, 3)]
    assert all(c.argv[-2:] == ["run", "tasks"] for c in tasks)
    assert len({c.env["FLEET_INSTANCE_ID"] for c in tasks}) == 3
    assert len({c.env.get("FLEET_STATE_DIR") for c in tasks}) == 3, "RocksDB locks its state directory"
    assert len({c.log for c in tasks}) == 3
    ports = _metrics_ports(children.values())
    assert len(set(ports)) == len(ports)


def test_instances_of_one_processor_by_either_spelling_and_bad_counts_refused():
    children = {c.name for c in _children(_args("--instances", "sink_postgres=2"))}
    assert {"sink-postgres.1", "sink-postgres.2", "telemetry"} <= children
    for bad in ("0", "telemetry=x", "nope=2", "gateway=2"):
        try:
            _children(_args("--instances", bad))
        except SystemExit as exc:
            assert "instances" in str(exc) or "one instance" in str(exc)
        else:
            raise AssertionError(f"--instances {bad} was accepted")


def test_a_bare_count_leaves_the_vda_bridge_at_one_and_named_replicas_share_the_vehicles():
    bare = {c.name: c for c in _children(_args("--instances", "2", "--vda-robots", "2"))}
    assert "vda5050" in bare and "vda5050.2" not in bare
    assert "FLEET_VDA_MQTT_SHARED_GROUP" not in bare["vda5050"].env
    named = {c.name: c for c in _children(_args("--instances", "vda5050=2", "--vda-robots", "2"))}
    groups = {named[f"vda5050.{i}"].env["FLEET_VDA_MQTT_SHARED_GROUP"] for i in (1, 2)}
    assert groups == {"fleet-vda5050"}


def test_vda_robots_run_the_bridge_and_a_vda_simulator_on_the_parking_spots_left():
    children = {c.name: c for c in _children(_args("--robots", "5", "--vda-robots", "3", "--site", "s9"))}
    bridge = children["vda5050"].env
    assert (bridge["FLEET_VDA_SITE_ID"], bridge["FLEET_MQTT_USERNAME"]) == ("s9", "fleetstream-bridge")
    sim = children["vda5050-simulator"]
    assert sim.argv[sim.argv.index("--protocol") + 1] == "vda5050"
    assert sim.argv[sim.argv.index("--robots") + 1] == "3"
    assert sim.argv[sim.argv.index("--vda-skip") + 1] == "5"
    assert sim.env["FLEET_MQTT_USERNAME"] == "fleetstream-sim"
    none = {c.name for c in _children(_args("--vda-robots", "0"))}
    assert "vda5050" not in none and "vda5050-simulator" not in none


def _metrics_ports(children) -> list[str]:
    return [
        c.env["FLEET_METRICS_PORT"]
        for c in children
        if c.name not in ("gateway", "simulator", "vda5050-simulator")
    ]


def test_metrics_ports_move_with_the_option_and_the_variable(monkeypatch):
    assert _metrics_ports(_children(_args()))[0] == "9400"
    children = _children(_args("--metrics-base-port", "19500"))
    ports = [int(p) for p in _metrics_ports(children)]
    assert ports[0] == 19500 and ports == sorted(set(ports)) and ports[-1] < 19500 + len(children)
    monkeypatch.setenv("FLEET_METRICS_BASE_PORT", "29400")
    assert _metrics_ports(_children(_args()))[0] == "29400"
    assert _metrics_ports(_children(_args("--metrics-base-port", "19600")))[0] == "19600"
    assert set(_metrics_ports(_children(_args("--metrics-base-port", "0")))) == {"0"}


def test_a_bad_metrics_base_port_is_refused(capsys):
    import pytest

    with pytest.raises(SystemExit):
        _args("--metrics-base-port", "http")
    assert "not a port number" in capsys.readouterr().err


def test_the_banner_prints_the_ports_in_use(monkeypatch):
    from pipelines.commands.up import _banner

    monkeypatch.setenv("FLEET_KAFKA_PORT", "19192")
    monkeypatch.setenv("FLEET_POSTGRES_PORT", "15532")
    monkeypatch.setenv("FLEET_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19192")
    monkeypatch.setenv("FLEET_POSTGRES_DSN", "postgresql://fleet@127.0.0.1:15432/fleetstream")
    args = _args("--robots", "0", "--metrics-base-port", "19500")
    children = [c for c in _children(args) if c.name != "gateway"]
    text = _banner(children, args)
    assert "kafka 127.0.0.1:19192" in text and "postgres 127.0.0.1:15532" in text
    assert "19092" not in text
    assert "metrics :19500/metrics" in text
    # A client setting that points at another port than the stack's is called out.
    assert (
        "FLEET_POSTGRES_DSN=postgresql://fleet@127.0.0.1:15432/fleetstream is not the local postgres" in text
    )
    assert "FLEET_KAFKA_BOOTSTRAP_SERVERS" not in text
    # So is an unset one whose default is not this stack's.
    monkeypatch.delenv("FLEET_KAFKA_BOOTSTRAP_SERVERS")
    text = _banner(children, args)
    assert (
        "FLEET_KAFKA_BOOTSTRAP_SERVERS (unset: 127.0.0.1:19092) is not the local kafka (port 19192)" in text
    )


def test_the_services_it_stops_are_those_it_started():
    before = {"postgres"}  # a developer's own, running before
    after = {"kafka", "registry", "postgres", "redis", "influxdb", "mosquitto"}  # influxdb2 is optional: off
    assert _started_by_this_run(before, after) == ["kafka", "registry", "redis", "influxdb", "mosquitto"]
    assert _started_by_this_run(after, after) == []
