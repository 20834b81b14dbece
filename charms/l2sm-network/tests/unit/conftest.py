"""Fixtures: a fake lightkube client with the L2S-M CRDs, controller and member relations."""

from __future__ import annotations

import json

import charm
import pytest
from ops import testing

from l2sm_controlplane.crds import custom_resource_definitions
from l2sm_knf.l2sm_network import NetworkProviderAppData, NetworkRequirerUnitData
from l2sm_testing.fake_kube import FakeKube
from l2sm_testing.samples import CONTROLLER_APP_DATA as CONTROLLER_DATA

APP = "my-first-osm-net"
MODEL = "cdn"


@pytest.fixture
def kube(monkeypatch):
    fake = FakeKube(default_namespace=MODEL)
    for crd in custom_resource_definitions("l2sm-controller", "l2sm"):
        fake.add(crd)
    monkeypatch.setattr("l2sm_knf.kube.Client", lambda **_: fake)
    return fake


# OSM's controller (the oldest Juju the charm must run on) and the current LTS.
JUJU_VERSIONS = ("2.9.43", "3.6.4")


@pytest.fixture(params=JUJU_VERSIONS)
def juju_version(request) -> str:
    return request.param


@pytest.fixture
def ctx(juju_version):
    return testing.Context(charm.L2smNetworkCharm, app_name=APP, juju_version=juju_version)


def integrate_hint(juju_version: str) -> str:
    """How the charm tells the operator to relate it to the controller, in that Juju's dialect."""
    verb = "relate" if juju_version.startswith("2.") else "integrate"
    return f"integrate with l2sm-controller: juju {verb} {APP}:controller l2sm-controller"


def run_hint(juju_version: str, action: str) -> str:
    """How the charm tells the operator to run an action on the leader, in that Juju's dialect."""
    if juju_version.startswith("2."):
        return f"juju run-action {APP}/leader {action} --wait"
    return f"juju run {APP}/leader {action}"


def controller_relation(data=None):
    raw = {k: json.dumps(v) for k, v in (CONTROLLER_DATA if data is None else data).items()}
    return testing.Relation("controller", remote_app_name="l2sm-controller", remote_app_data=raw)


def members(app, units, local_app_data=None, relation_id=None):
    """A `network` relation with one KNF application; units: {number: (address, [offered])}."""
    # Written through the contract's own schema, as the KNF library writes it.
    unit_data = {
        n: {
            k: json.dumps(v)
            for k, v in NetworkRequirerUnitData.model_validate(
                {"address": addr, "offered-prefixes": list(offered)}
            )
            .model_dump(by_alias=True)
            .items()
        }
        for n, (addr, offered) in units.items()
    }
    kwargs = {"id": relation_id} if relation_id is not None else {}
    return testing.Relation(
        "network",
        remote_app_name=app,
        remote_units_data=unit_data,
        local_app_data=local_app_data or {},
        **kwargs,
    )


def make_state(relations=(), leader=True, config=None, controller=True):
    rels = set(relations)
    if controller:
        rels.add(controller_relation())
    return testing.State(leader=leader, model=testing.Model(name=MODEL), config=config or {}, relations=rels)


def provider_data(state, relation) -> NetworkProviderAppData:
    """The databag the network wrote, validated with the contract's own schema."""
    raw = state.get_relation(relation.id).local_app_data
    known = set(NetworkProviderAppData.model_fields)
    assert set(raw) <= known, f"keys outside the contract: {set(raw) - known}"
    return NetworkProviderAppData.model_validate({k: json.loads(v) for k, v in raw.items()})
