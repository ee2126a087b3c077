"""The vendored VDA 5050 schemas: loaded offline, unchanged, and the upstream quirks handled as documented."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from schemas import vda

#: sha256 of each file as copied from the project's shared copy of the upstream tags (../shared/vda5050).
UPSTREAM = {
    "2.1.0/connection.schema.json": "aa991bc8c5a15115a3cb46cbbc2a87bef208cef436268a06feed663a949c30f1",
    "2.1.0/factsheet.schema.json": "386e3f20be0fa29132e8b3bc1e90991e7e5cf496aae7f3fb744cb072174a8bfc",
    "2.1.0/instantActions.schema.json": "79b9d71ce31f5bce167d470e0e12a83c28f28f20580148b4dae28cedeb78a355",
    "2.1.0/order.schema.json": "18fedf85ecf7bc22baf7da71b74d08d699d65b8c6a5f0ccde8bc8d84e1406796",
    "2.1.0/state.schema.json": "26e41279414d7acfeac6ea9b6438b484b0930ee0e9059cf953168d141da8473b",
    "2.1.0/visualization.schema.json": "9930b0fca1743ab2e4b9e2a66dad0f366bd4d8b18550f896adce34db3357ebff",
    "3.0.0/connection.schema.json": "083dffd157e1af2d365e24b73dfc18e404addb3e1e46dd4c7fbab63cd777cafb",
    "3.0.0/factsheet.schema.json": "d2fd651dc496c4cab34c35b43a3d1293629c3cce954fae71ef6aebbda67991ec",
    "3.0.0/instantActions.schema.json": "230bfcab4617fb9e8b93c1b9c18c99da43b1c80619e3a1ecc8daa926cd792450",
    "3.0.0/order.schema.json": "f7e2d3b5c914e76d28d39e3e5a08b6997e56e9c4cbcceb634f13fe3573986d12",
    "3.0.0/responses.schema.json": "da6297b06f278ddca3bfd3c0dec982e3e62d2cf635e0cdb2dea93d090504aad8",
    "3.0.0/state.schema.json": "f00d6620e0d1d20efa99f8ce3bd1a25a578f0c01e96cc9b52548259f4847d307",
    "3.0.0/visualization.schema.json": "858eeab4758a5891e1620a8df333e47f341f61dd8d683a41bb0293217ddafc92",
    "3.0.0/zoneSet.schema.json": "d9a2d8a2f0d7300cc6d9158b1708b7f7d08fdefd5415b1991fbeebab08a9b402",
}


@pytest.mark.parametrize("release", ["2.1.0", "3.0.0"])
def test_every_schema_loads_and_compiles(release: str) -> None:
    for topic in vda.topics_of(release):
        schema = vda.load_schema(release, topic)
        assert schema["type"] == "object" and "properties" in schema
        if schema.get("required"):
            assert vda.problems(topic, {}, release)


def test_only_a_trailing_comma_keeps_three_upstream_files_from_being_json() -> None:
    broken = []
    for path in sorted(vda.SCHEMA_DIR.glob("*/*.schema.json")):
        text = path.read_text(encoding="utf-8")
        try:
            json.loads(text)
        except json.JSONDecodeError:
            broken.append(f"{path.parent.name}/{path.name}")
            # removing the commas before } or ] is all it takes, and it changes nothing else
            assert json.loads(re.sub(r",(\s*[}\]])", r"\1", text)) == vda.load_schema(
                path.parent.name, path.name.split(".")[0]
            )
    assert broken == [
        "3.0.0/factsheet.schema.json",
        "3.0.0/order.schema.json",
        "3.0.0/visualization.schema.json",
    ]


def test_files_are_byte_for_byte_the_upstream_copy() -> None:
    here = {f"{p.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(vda.SCHEMA_DIR.glob("*/*.schema.json"))}  # fmt: skip
    assert here == UPSTREAM


@pytest.mark.parametrize(
    ("version", "release"), [("2.0.0", "2.1.0"), ("2.1.0", "2.1.0"), ("2.1.3", "2.1.0"), ("3.0.0", "3.0.0")]
)
def test_versions_map_to_the_schema_release(version: str, release: str) -> None:
    assert vda.schema_release(version) == release


@pytest.mark.parametrize("version", ["1.1.0", "4.0.0", "2.1", "", None])
def test_unsupported_versions_are_refused(version: object) -> None:
    with pytest.raises(vda.VdaVersionError):
        vda.schema_release(version)  # type: ignore[arg-type]


def test_the_3_0_factsheet_errata_accept_the_schemas_form_and_the_texts_form_only() -> None:
    from tests.unit.topologies.vda5050.support import T0, Vehicle

    factsheet = Vehicle(version="3.0.0").factsheet(T0)
    spec = factsheet["typeSpecification"]
    actions = factsheet["protocolFeatures"]["mobileRobotActions"]
    assert vda.problems("factsheet", factsheet, "3.0.0") == []  # the text's form: booleans
    for action in actions:
        action["pauseAllowed"], action["cancelAllowed"] = "false", "true"  # the schema's form: strings
    assert vda.problems("factsheet", factsheet, "3.0.0") == []
    spec["mobileRobotKinematics"] = spec.pop("mobileRobotKinematic")  # the text's field name
    assert vda.problems("factsheet", factsheet, "3.0.0") == []
    del spec["mobileRobotKinematics"]
    assert vda.problems("factsheet", factsheet, "3.0.0")  # neither: invalid
    actions[0]["pauseAllowed"] = 3
    spec["mobileRobotKinematic"] = "DIFF"
    assert vda.problems("factsheet", factsheet, "3.0.0")


def test_timestamps_round_trip_and_validate() -> None:
    ms = 1_492_256_403_120
    text = vda.format_timestamp(ms)
    assert text == "2017-04-15T11:40:03.120Z"
    assert vda.parse_timestamp(text) == ms
    assert vda.parse_timestamp("2017-04-15T11:40:03.12Z") == ms
    with pytest.raises(ValueError):
        vda.parse_timestamp("2017-04-15T11:40:03")
