"""Property-based: every config option, action param and remote relation field of the network
charm, fed bad values. The promise: the status, failure or rejection names the field, the
message stays short, and nothing changes for anyone else (other units' relation data, the
L2Network in the cluster, stored state)."""

from __future__ import annotations

import copy
import json

import pydantic
import pytest
from conftest import APP, CONTROLLER_DATA, MODEL, controller_relation, members
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from models import NetworkConfig
from ops import testing

from l2sm_charmlib.l2sm_controller import ControllerProviderAppData
from l2sm_controlplane.crds import custom_resource_definitions
from l2sm_core.validation import application_name
from l2sm_knf.l2sm_network import NetworkProviderAppData
from l2sm_testing.bad_input import databag_value, json_values, loose_booleans, not_json, tricky_text
from l2sm_testing.fake_kube import FakeKube

GOOD_CONFIG = {"cidr": "10.0.1.0/24", "reserved": "10.0.1.250", "mtu": 1400}
MESSAGE_MAX = 300  # what a status line or a rejection may grow to, whatever the input

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Cluster:
    """A settled network: knf/0 holds 10.0.1.7 (static), knf/1 one from the pool, router/0
    holds 10.0.1.1 and routes 10.0.2.0/24. Each example starts from a copy of it."""

    def __init__(self, monkeypatch, juju_version: str):
        self.kube = self._fresh({})
        monkeypatch.setattr("l2sm_knf.kube.Client", lambda **_: self.kube)
        for crd in custom_resource_definitions("l2sm-controller", "l2sm"):
            self.kube.add(crd)
        self.ctx = testing.Context(_charm_class(), app_name=APP, juju_version=juju_version)
        knf = members("knf", {0: ("10.0.1.7/24", []), 1: ("", [])})
        router = members("router", {0: ("10.0.1.1/24", ["10.0.2.0/24"])})
        out = self.ctx.run(self.ctx.on.config_changed(), self.state([knf, router]))
        assert out.unit_status.name == "active", out.unit_status
        self.knf, self.router = out.get_relation(knf.id), out.get_relation(router.id)
        self.settled = out
        self.objects = copy.deepcopy(self.kube.objects)
        self.assignments = {
            u: a
            for rel in (self.knf, self.router)
            for u, a in json.loads(rel.local_app_data["assignments"]).items()
        }
        assert self.assignments == {
            "knf/0": "10.0.1.7/24",
            "knf/1": "10.0.1.2/24",
            "router/0": "10.0.1.1/24",
        }

    @staticmethod
    def _fresh(objects):
        fake = FakeKube(default_namespace=MODEL)
        for obj in objects.values():
            fake.add(obj)
        return fake

    def reset(self) -> None:
        self.kube = self._fresh(self.objects)

    def state(self, relations, config=None, controller=None):
        settled = getattr(self, "settled", None)
        return testing.State(
            leader=True,
            model=testing.Model(name=MODEL),
            config=GOOD_CONFIG if config is None else config,
            relations=set(relations) | {controller or controller_relation()},
            stored_states=settled.stored_states if settled else frozenset(),
        )

    def knf_writing(self, raw: dict[str, str]) -> testing.Relation:
        """The knf relation as settled, with knf/0's databag replaced by `raw`."""
        return testing.Relation(
            "network",
            id=self.knf.id,
            remote_app_name="knf",
            remote_units_data={0: raw, 1: dict(self.knf.remote_units_data[1])},
            local_app_data=dict(self.knf.local_app_data),
        )

    def unchanged_cluster(self) -> None:
        assert self.kube.objects == self.objects
        assert self.kube.writes == []

    def databags(self, out):
        return {rid: dict(out.get_relation(rid).local_app_data) for rid in (self.knf.id, self.router.id)}


def _charm_class():
    import charm

    return charm.L2smNetworkCharm


@pytest.fixture
def cluster(monkeypatch, juju_version):
    return Cluster(monkeypatch, juju_version)


def _charm_stored(state: testing.State) -> frozenset:
    """Stored state of the charm and its objects (ops keeps its own event count beside it)."""
    return frozenset(s for s in state.stored_states if s.owner_path)


def _short(message: str) -> None:
    assert len(message) <= MESSAGE_MAX, f"{len(message)} characters: {message[:80]}..."


# -- config options ---------------------------------------------------------------------------

ipv4_networks = st.builds(
    lambda a, b, c, d, n: f"{a}.{b}.{c}.{d}/{n}",
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 33),
)
special_cidrs = st.sampled_from(
    ["0.0.0.0/0", "127.0.0.0/8", "224.0.0.0/4", "169.254.0.0/16", "240.0.0.0/4", "10.0.1.0/31"]
)
addresses = st.builds(lambda i: f"10.0.1.{i}", st.integers(0, 300))
OPTION_VALUES = {
    "network-name": tricky_text(good=["net-a", APP]),
    "cidr": st.one_of(tricky_text(good=["10.0.1.0/24"]), special_cidrs, ipv4_networks),
    "mtu": st.one_of(st.integers(), st.booleans(), st.sampled_from([0, 575, 1401, 1500, 9000, -1])),
    "reserved": st.one_of(
        tricky_text(good=["10.0.1.250", "10.0.1.7"]),
        st.lists(addresses, max_size=6).map(", ".join),
        st.just(",".join(f"10.0.1.{i % 254 + 1}" for i in range(300))),
    ),
    "type": tricky_text(good=["vnet", "vlink", "ext-vnet"]),
}


def _valid(config: dict) -> bool:
    try:
        NetworkConfig.model_validate({k.replace("-", "_"): v for k, v in config.items()})
    except pydantic.ValidationError:
        return False
    return True


@pytest.mark.parametrize("option", sorted(OPTION_VALUES))
def test_every_option(cluster, option):
    @PROPERTY
    @given(OPTION_VALUES[option])
    def check(value):
        cluster.reset()
        config = GOOD_CONFIG | {option: value}
        ctx = cluster.ctx
        out = ctx.run(ctx.on.config_changed(), cluster.state([cluster.knf, cluster.router], config))
        if not _valid(config) or out.unit_status.name == "blocked":
            # Refused: named, short, and the last good config keeps serving.
            assert out.unit_status.name == "blocked"
            assert f"option '{option}'" in out.unit_status.message, out.unit_status.message
            _short(out.unit_status.message)
            assert cluster.databags(out) == cluster.databags(cluster.settled)
            cluster.unchanged_cluster()
            assert _charm_stored(out) == _charm_stored(cluster.settled)
        else:
            # Accepted (a good value after all): no holder lost its address.
            held = {
                u: a
                for rid in (cluster.knf.id, cluster.router.id)
                for u, a in json.loads(out.get_relation(rid).local_app_data["assignments"]).items()
            }
            assert held == cluster.assignments

    check()


# -- action params ----------------------------------------------------------------------------


@PROPERTY
@given(tricky_text(good=[APP]))
def test_show_application_name_is_checked_and_changes_nothing(cluster, value):
    # OSM's application-name only says which application runs the action: a Juju
    # application name or refused, naming it; nothing changes either way.
    cluster.reset()
    ctx = cluster.ctx
    state = cluster.state([cluster.knf, cluster.router])
    try:
        if value:  # an empty string counts as absent
            application_name(value)
    except ValueError:
        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action("show", params={"application-name": value}), state)
        assert failed.value.message.startswith("parameter 'application-name': ")
        _short(failed.value.message)
        out = None
    else:
        out = ctx.run(ctx.on.action("show", params={"application-name": value}), state)
        assert ctx.action_results is not None and ctx.action_results["network"] == APP
    if out is not None:
        assert cluster.databags(out) == cluster.databags(cluster.settled)
    cluster.unchanged_cluster()


@PROPERTY
@given(st.sampled_from(sorted(OPTION_VALUES)), st.data())
def test_show_under_a_refused_option_fails_naming_it(cluster, option, data):
    cluster.reset()
    value = data.draw(OPTION_VALUES[option])
    config = GOOD_CONFIG | {option: value}
    assume(not _valid(config))
    ctx = cluster.ctx
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("show"), cluster.state([cluster.knf, cluster.router], config))
    assert f"option '{option}'" in failed.value.message
    _short(failed.value.message)
    cluster.unchanged_cluster()


# -- requirer unit data (what each KNF unit writes) --------------------------------------------

junk_lists = st.lists(st.one_of(tricky_text(), json_values(), ipv4_networks), min_size=1, max_size=40)
UNIT_FIELDS = {
    "address": st.one_of(
        databag_value(),
        tricky_text(good=["10.0.1.7/24", "10.0.1.9/24"]).map(json.dumps),
        ipv4_networks.map(json.dumps),
    ),
    "offered-prefixes": st.one_of(
        databag_value(),
        junk_lists.map(json.dumps),
        st.lists(st.one_of(special_cidrs, ipv4_networks), max_size=40).map(json.dumps),
    ),
}


@pytest.mark.parametrize("field", sorted(UNIT_FIELDS))
def test_every_unit_field(cluster, field):
    good = dict(cluster.knf.remote_units_data[0])

    @PROPERTY
    @given(UNIT_FIELDS[field])
    def check(raw_value):
        cluster.reset()
        spoiled = cluster.knf_writing(good | {field: raw_value})
        ctx = cluster.ctx
        out = ctx.run(
            ctx.on.relation_changed(spoiled, remote_unit=0), cluster.state([spoiled, cluster.router])
        )
        assert out.unit_status.name == "active", out.unit_status  # the network itself is fine
        raw = out.get_relation(spoiled.id).local_app_data
        data = NetworkProviderAppData.model_validate({k: json.loads(v) for k, v in raw.items()})
        # Nobody else is touched: knf/1 keeps its address, the router neither, nor its routes.
        assert data.assignments.get("knf/1") == "10.0.1.2/24"
        assert "knf/1" not in data.rejections
        router_after = out.get_relation(cluster.router.id).local_app_data
        reason = data.rejections.get("knf/0", "")
        _short(reason)
        cluster.unchanged_cluster()
        if reason.startswith("bad relation data"):
            # Refused data: named, and knf/0 keeps what it holds.
            assert f"field '{field}" in reason
            assert data.assignments["knf/0"] == "10.0.1.7/24"
            assert router_after == cluster.router.local_app_data
        else:
            # Valid data, whatever it asks: the others' addresses stay theirs.
            assert json.loads(router_after["assignments"]) == {"router/0": "10.0.1.1/24"}

    check()


@PROPERTY
@given(
    st.dictionaries(st.sampled_from(["address", "offered-prefixes", "ingress-address", "x"]), databag_value())
)
def test_any_unit_databag_never_crashes(cluster, raw):
    cluster.reset()
    spoiled = cluster.knf_writing(raw)
    ctx = cluster.ctx
    out = ctx.run(ctx.on.relation_changed(spoiled, remote_unit=0), cluster.state([spoiled, cluster.router]))
    raw_out = out.get_relation(spoiled.id).local_app_data
    data = NetworkProviderAppData.model_validate({k: json.loads(v) for k, v in raw_out.items()})
    assert data.assignments.get("knf/1") == "10.0.1.2/24"
    _short(data.rejections.get("knf/0", ""))
    if "address" not in raw or data.rejections.get("knf/0", "").startswith("bad relation data"):
        assert data.assignments["knf/0"] == "10.0.1.7/24"  # it keeps what it holds


# -- controller app data ----------------------------------------------------------------------

CONTROLLER_FIELDS = {
    "host": st.one_of(databag_value(), tricky_text(good=[CONTROLLER_DATA["host"]]).map(json.dumps)),
    "namespace": st.one_of(databag_value(), tricky_text(good=["l2sm"]).map(json.dumps)),
    "cluster-ip": st.one_of(
        databag_value(),
        st.sampled_from(["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "169.254.1.1"]).map(
            json.dumps
        ),
        tricky_text(good=["10.152.183.20"]).map(json.dumps),
    ),
    "openflow-port": st.one_of(
        databag_value(), st.integers().map(json.dumps), st.sampled_from(['"6633"', "true", "6633.0"])
    ),
    "rest-url": st.one_of(
        databag_value(),
        tricky_text(good=["http://10.152.183.20:8181"]).map(json.dumps),
        st.sampled_from(["http://", "ftp://x", "http://a:b@h", "http://h:0", "//h"]).map(json.dumps),
    ),
    "ready": st.one_of(not_json(), loose_booleans().map(json.dumps)),
    "credentials-secret": st.one_of(
        databag_value(), tricky_text(good=[CONTROLLER_DATA["credentials-secret"]]).map(json.dumps)
    ),
}


def _controller_valid(raw: dict[str, str]) -> bool:
    try:
        ControllerProviderAppData(**{k: json.loads(v) for k, v in raw.items()})
    except (ValueError, TypeError, RecursionError):
        return False
    return True


@pytest.mark.parametrize("field", sorted(CONTROLLER_FIELDS))
def test_every_controller_field(cluster, field):
    good = {k: json.dumps(v) for k, v in CONTROLLER_DATA.items()}

    @PROPERTY
    @given(st.one_of(CONTROLLER_FIELDS[field], st.none()))
    def check(raw_value):
        cluster.reset()
        raw = {k: v for k, v in (good | {field: raw_value}).items() if v is not None}
        assume(not _controller_valid(raw))
        controller = testing.Relation("controller", remote_app_name="l2sm-controller", remote_app_data=raw)
        ctx = cluster.ctx
        out = ctx.run(
            ctx.on.relation_changed(controller),
            cluster.state([cluster.knf, cluster.router], controller=controller),
        )
        assert out.unit_status.name == "blocked"
        assert out.unit_status.message.startswith(f"controller relation data: field '{field}'")
        _short(out.unit_status.message)
        assert cluster.databags(out) == cluster.databags(cluster.settled)
        cluster.unchanged_cluster()

    check()
