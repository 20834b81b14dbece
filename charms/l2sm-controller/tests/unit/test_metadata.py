"""charmcraft.yaml promises that OSM and the other charms rely on."""

from pathlib import Path

import charm
import yaml

META = yaml.safe_load((Path(__file__).resolve().parents[2] / "charmcraft.yaml").read_text())


def test_every_action_accepts_osm_and_refuses_unknown_params():
    assert META["actions"]
    for name, spec in META["actions"].items():
        assert "application-name" in spec["params"], name
        assert spec.get("additionalProperties") is False, name
        assert hasattr(charm.L2smControllerCharm, "_on_" + name.replace("-", "_")), name


def test_images_pinned_to_the_supported_l2sm_release():
    from l2sm_controlplane import CONTROLLER_IMAGE, MANAGER_IMAGE

    resources = META["resources"]
    assert resources["controller-image"]["upstream-source"] == CONTROLLER_IMAGE
    assert resources["manager-image"]["upstream-source"] == MANAGER_IMAGE
    assert {c["resource"] for c in META["containers"].values()} == set(resources)


def test_interface_and_trust():
    assert META["provides"]["l2sm-controller"]["interface"] == "l2sm_controller"
    assert "k8s-api" in META["assumes"]


def test_deploys_on_juju_29_and_3():
    # Multi-base platforms, no top-level base: 22.04 is what Juju 2.9 (OSM) deploys.
    assert "base" not in META
    assert set(META["platforms"]) == {"ubuntu@22.04:amd64", "ubuntu@24.04:amd64"}
    assert META["assumes"] == ["k8s-api"]  # known to Juju since 2.9.23; nothing newer assumed


def test_action_schemas_are_what_juju_29_reads():
    # Juju 2.9 (juju/charm v8) turns each action into a JSON-schema (draft 4) object: these
    # keys, and plain JSON types, are what it validates params with.
    for name, spec in META["actions"].items():
        assert set(spec) <= {"description", "params", "required", "additionalProperties"}, name
        for param, schema in spec["params"].items():
            assert schema["type"] in {"string", "boolean", "integer", "number"}, (name, param)
        assert set(spec.get("required", [])) <= set(spec["params"]), name
