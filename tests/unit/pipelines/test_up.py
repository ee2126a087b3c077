"""`fleet up` (make run) builds the right children from its arguments, without starting anything."""

from pipelines.cli import build_parser
from pipelines.commands.up import _children


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
        "sink_postgres",
        "sink_influx",
        "sink_redis",
        "gateway",
        "planner",
        "simulator",
    } <= set(children)
    assert "sink_rmf" not in children, "sink_rmf needs an RMF server: only with --with-rmf"
    assert "rmf_ingest" not in children, "the RMF processors run only with --with-rmf"
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
    assert {"sink_rmf", "rmf_ingest"} <= set(children)
    assert "simulator" not in children
    assert children["rmf_ingest"].env["FLEET_RMF_TENANT_ID"] == "t1"
    assert children["rmf_ingest"].env["FLEET_RMF_SITE_ID"] == "demo"
    assert children["gateway"].env["FLEET_RMF_WS_TOKEN"]


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
