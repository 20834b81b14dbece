"""Property tests of the KNF library's promise at every boundary it reads: the `addresses`
and `forwards` options, each field of the network's app databag, and the pod's own
annotations. Whatever arrives, the unit's status names what is wrong (clipped), and nothing
changes: the unit's databag, the StatefulSet (FakeKube writes), the netlink plan, the
library's stored state, and no ready/changed/lost event.

Each example starts from one steady state (a unit on net-a with its address, a route and its
interface), computed once; hypothesis varies one input at a time."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops import testing
from test_l2sm_network import (
    APP,
    GOOD_PLAN,
    GOOD_ROUTE,
    JUJU_VERSIONS,
    MODEL,
    NET_A,
    ctx,
    juju_statefulset,
    knf_charm,
    library_stored,
    network,
    pod,
    state,
    with_remote,
)

from l2sm_core.manifests.knf import merge_into, pod_template_patch
from l2sm_knf import l2sm_network as library
from l2sm_knf.l2sm_network import NetworkInfo, NetworkProviderAppData
from l2sm_testing.bad_input import databag_value, json_values, loose_booleans, not_json, tricky_text
from l2sm_testing.fake_kube import FakeKube

SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
UNIT = f"{APP}/0"
GOOD_ADDRESSES = "net-a=10.0.1.10/24"
GOOD_NETWORK = {"name": "net-a", "cidr": "10.0.1.0/24", "mtu": 1400, "type": "vnet"}
CIDR = ipaddress.IPv4Network("10.0.1.0/24")


class Rig:
    """The boundaries the library talks to, reset to the steady state for every example."""

    def __init__(self, juju_version: str) -> None:
        self.juju_version = juju_version
        self.kube = FakeKube(default_namespace=MODEL)
        self.plans: list[list[Any]] = []
        self.steady_kube: FakeKube | None = None
        self.before: testing.State | None = None

    def apply(self, batch):
        self.plans.append(list(batch))
        return []

    def reset(self) -> testing.State:
        assert self.steady_kube is not None and self.before is not None
        # A fresh fake holding copies of the steady objects (and of what was applied to them).
        self.kube = self.steady_kube.snapshot()
        self.plans = []
        return self.before


@pytest.fixture(scope="module", params=JUJU_VERSIONS)
def rig(request):
    """One steady state per Juju version: every example below runs under each."""
    rig = Rig(request.param)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("l2sm_knf.kube.Client", lambda **_: rig.kube)
        mp.setattr(library, "_default_applier", rig.apply)
        rig.kube.add(merge_into(juju_statefulset(), pod_template_patch(APP, MODEL, ["net-a"], ("charm",))))
        rig.kube.add(pod(networks=["net-a"], interfaces=["net1"]))
        a = network(**NET_A, assignments={UNIT: "10.0.1.10/24"}, routes=[GOOD_ROUTE])
        c = ctx(juju_version=rig.juju_version)
        before = c.run(c.on.config_changed(), state([a], config={"addresses": GOOD_ADDRESSES}))
        assert before.unit_status == testing.ActiveStatus("net-a 10.0.1.10/24 on net1")
        assert rig.plans[-1] == GOOD_PLAN
        rig.kube.writes.clear()
        rig.steady_kube, rig.before = rig.kube, before
        yield rig


def run(rig: Rig, after: testing.State, event: str = "update_status", monkeypatch_forwards=None):
    c = ctx(juju_version=rig.juju_version)
    if event == "relation_changed":
        out = c.run(c.on.relation_changed(next(iter(after.relations))), after)
    else:
        out = c.run(getattr(c.on, event)(), after)
    return c, out


def assert_nothing_changed(rig: Rig, c, out, plan_may_repeat: bool = True, received_may_change: bool = False):
    before = rig.before
    assert before is not None
    (relation,) = before.relations
    assert out.get_relation(relation.id).local_unit_data == before.get_relation(relation.id).local_unit_data
    assert rig.kube.writes == []
    assert all(p == GOOD_PLAN for p in rig.plans) if plan_may_repeat else rig.plans == []
    assert [e for e in c.emitted_events if isinstance(e, library.NetworkEvent)] == []
    stored, kept = library_stored(out), library_stored(before)
    if received_may_change:
        # What the schema accepted is remembered as received; refusing to apply it is the
        # plan's part, and what was applied stays as it was.
        del stored["received"], kept["received"]
    assert stored == kept


def assert_blocked_naming(out, *fragments: str):
    assert out.unit_status.name == "blocked", out.unit_status
    message = out.unit_status.message
    assert len(message) <= library.STATUS_MAX
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# -- oracles: what the interface's own schema refuses -------------------------------------


def _refused(check) -> bool:
    try:
        check()
    except (pydantic.ValidationError, ValueError, TypeError, RecursionError):
        return True
    return False


def _schema_refuses(key: str, value: Any) -> bool:
    return _refused(lambda: NetworkProviderAppData.model_validate({"network": GOOD_NETWORK, key: value}))


def _decoded(raw: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return _NOT_JSON


_NOT_JSON = object()


# -- the network's app databag, field by field ---------------------------------------------


def _spoiled_network() -> st.SearchStrategy[str]:
    one_field = st.tuples(
        st.sampled_from(sorted(GOOD_NETWORK)),
        st.one_of(json_values(), tricky_text(good=["net-a", "10.0.1.0/24", "vnet"]), st.integers()),
    ).map(lambda kv: json.dumps({**GOOD_NETWORK, kv[0]: kv[1]}))
    return st.one_of(databag_value(), one_field).filter(
        lambda raw: raw != "" and _refused(lambda: NetworkInfo.model_validate(json.loads(raw)))
    )


@SETTINGS
@given(raw=_spoiled_network())
def test_any_bad_network_field(rig, raw):
    c, out = run(rig, with_remote(rig.reset(), network=raw), "relation_changed")
    assert_blocked_naming(out, "net-a sent bad data (field 'network')", "keeping the last good configuration")
    assert_nothing_changed(rig, c, out)


def _spoiled_own_entry(key: str, good: list[str]) -> st.SearchStrategy[str]:
    whole = st.one_of(not_json(), json_values().filter(lambda v: not isinstance(v, dict)).map(json.dumps))
    entry = st.one_of(json_values(), tricky_text(good=good)).filter(lambda v: _schema_refuses(key, {UNIT: v}))
    return st.one_of(whole, entry.map(lambda v: json.dumps({UNIT: v, "other-knf/3": "x"})))


@SETTINGS
@given(raw=_spoiled_own_entry("assignments", ["10.0.1.10/24"]))
def test_any_bad_assignment(rig, raw):
    c, out = run(rig, with_remote(rig.reset(), assignments=raw), "relation_changed")
    assert_blocked_naming(out, "(field 'assignments')")
    assert_nothing_changed(rig, c, out)


@SETTINGS
@given(raw=_spoiled_own_entry("rejections", []))
def test_any_bad_rejection(rig, raw):
    c, out = run(rig, with_remote(rig.reset(), rejections=raw), "relation_changed")
    assert_blocked_naming(out, "net-a sent bad data (field 'rejections')")
    assert_nothing_changed(rig, c, out)


def _bad_route() -> st.SearchStrategy[Any]:
    spoiled = st.fixed_dictionaries(
        {
            "prefix": st.one_of(tricky_text(good=["10.0.8.0/24"]), json_values()),
            "via": st.one_of(tricky_text(good=["10.0.1.1"]), json_values()),
        }
    )
    return st.one_of(json_values(), spoiled).filter(lambda e: _schema_refuses("routes", [e]))


@SETTINGS
@given(
    raw=st.one_of(
        not_json(),
        json_values().filter(lambda v: not isinstance(v, list)).map(json.dumps),
        st.lists(_bad_route(), min_size=1, max_size=3).map(lambda bad: json.dumps([GOOD_ROUTE, *bad])),
    )
)
def test_any_bad_routes_keep_the_good_one(rig, raw):
    c, out = run(rig, with_remote(rig.reset(), routes=raw), "relation_changed")
    assert_blocked_naming(out, "net-a sent bad data (field 'routes')")
    assert_nothing_changed(rig, c, out)


# What the schema lets through but the unit must still not configure.


@SETTINGS
@given(gateway=st.ip_addresses(v=4).filter(lambda ip: ip not in CIDR))
def test_an_off_link_gateway_is_never_configured(rig, gateway):
    routes = json.dumps([GOOD_ROUTE, {"prefix": "10.0.8.0/24", "via": str(gateway)}])
    c, out = run(rig, with_remote(rig.reset(), routes=routes))
    assert_blocked_naming(out, "net-a", "'routes'")
    assert_nothing_changed(rig, c, out, received_may_change=True)


@SETTINGS
@given(address=st.ip_addresses(v=4), length=st.integers(0, 32))
def test_an_address_off_the_network_is_never_configured(rig, address, length):
    iface = ipaddress.IPv4Interface(f"{address}/{length}")
    usable = iface.network == CIDR and iface.ip not in (CIDR.network_address, CIDR.broadcast_address)
    if usable:
        return  # a good address: moving to it is the network's right
    c, out = run(rig, with_remote(rig.reset(), assignments=json.dumps({UNIT: str(iface)})))
    assert_blocked_naming(out, "net-a", "'assignments'")
    assert_nothing_changed(rig, c, out, received_may_change=True)


@SETTINGS
@given(mtu=st.one_of(st.integers(max_value=575), st.integers(min_value=1401)))
def test_an_mtu_beyond_the_attachments_is_never_configured(rig, mtu):
    raw = json.dumps({**GOOD_NETWORK, "mtu": mtu})
    c, out = run(rig, with_remote(rig.reset(), network=raw))
    assert_blocked_naming(out, "net-a", "'network'", "mtu")
    assert_nothing_changed(rig, c, out, received_may_change=True)


# -- the options -------------------------------------------------------------------------


# net-b is not joined: naming it changes nothing (the status points it out).
_MEANS_THE_SAME = re.compile(r"[ ,]*net-a *= *10\.0\.1\.10/24[ ,]*(net-b *= *10\.0\.2\.1/24[ ,]*)?")
_MEANS_POOL = re.compile(r"[ ,]*")


@SETTINGS
@given(
    value=st.one_of(
        tricky_text(good=[GOOD_ADDRESSES, "net-a=10.0.1.10/24,net-b=10.0.2.1/24"]),
        st.sampled_from(
            [
                "net-a=10.0.5.10/24",  # outside the published cidr
                "net-a=10.0.1.10/16",  # another prefix length
                "net-a=10.0.1.0/24",  # the network's own address
                "net-a=10.0.1.10/24,net-a=10.0.1.11/24",
                "net-a=10.0.1.10/24,net-b=10.0.1.10/24",
                "Net-A=10.0.1.10/24",
                "net-a=10.0.1.10/255.255.255.0",
                "net-a=224.0.0.10/24",
            ]
        ),
    )
)
def test_any_addresses_value(rig, value):
    after = dataclasses.replace(rig.reset(), config={"addresses": value})
    c, out = run(rig, after, "config_changed")
    if out.unit_status.name == "blocked":
        assert_blocked_naming(out, "option 'addresses'")
        assert_nothing_changed(rig, c, out)
        return
    # Accepted: then it must mean what it says, and only spaces and commas may be around it.
    (relation,) = after.relations
    asked = json.loads(out.get_relation(relation.id).local_unit_data["address"])
    if _MEANS_THE_SAME.fullmatch(value):
        assert asked == "10.0.1.10/24"
        assert_nothing_changed(rig, c, out)
    else:
        assert _MEANS_POOL.fullmatch(value), value
        assert asked == ""


@SETTINGS
@given(
    value=st.one_of(loose_booleans(), json_values(), tricky_text(good=["true", "false"])).filter(
        lambda v: not isinstance(v, bool) and not (isinstance(v, str) and v.lower() in ("true", "false"))
    )
)
def test_any_forwards_value(rig, value):
    before = rig.reset()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(knf_charm.TestKnfCharm, "_forwards", lambda self: value)
        c, out = run(rig, before, "config_changed")
    assert_blocked_naming(out, "option 'forwards'")
    assert_nothing_changed(rig, c, out, plan_may_repeat=True)


# -- the pod's own annotations -------------------------------------------------------------


_ANNOTATION_VALUES = st.one_of(
    tricky_text(good=["net-a", '[{"name":"net-a"}]']),
    not_json(),
    json_values().map(json.dumps),
    st.just("[" * 5000),
)


@SETTINGS
@given(
    annotation=st.sampled_from(
        ["l2sm/networks", "k8s.v1.cni.cncf.io/networks", "k8s.v1.cni.cncf.io/network-status"]
    ),
    value=_ANNOTATION_VALUES,
)
def test_any_mapping_annotation(rig, annotation, value):
    before = rig.reset()
    live = rig.kube.find("Pod", f"{APP}-0", MODEL)
    assert live is not None
    live["metadata"]["annotations"][annotation] = value
    c, out = run(rig, before)
    if out.unit_status.name == "blocked":
        assert_blocked_naming(out, annotation)
        assert_nothing_changed(rig, c, out)
        return
    # Read and found to say the same (e.g. `net-a` for `[{"name":"net-a"}]`): nothing moved.
    assert out.unit_status == before.unit_status
    assert all(p == GOOD_PLAN for p in rig.plans) and rig.kube.writes == []


@SETTINGS
@given(value=_ANNOTATION_VALUES)
def test_any_l2sm_error(rig, value):
    before = rig.reset()
    live = rig.kube.find("Pod", f"{APP}-0", MODEL)
    assert live is not None
    live["metadata"]["annotations"]["l2sm/error"] = value
    c, out = run(rig, before)
    if not value.strip():
        assert out.unit_status == before.unit_status
    else:
        assert_blocked_naming(out, "L2S-M could not attach this pod: ")
        assert "\n" not in out.unit_status.message
    # The interfaces it has keep what they carry: the error is about attaching, not them.
    assert all(p == GOOD_PLAN for p in rig.plans) and rig.kube.writes == []
    assert [e for e in c.emitted_events if isinstance(e, library.NetworkEvent)] == []
