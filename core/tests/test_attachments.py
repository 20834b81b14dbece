import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2sm_core import attachments
from l2sm_core.attachments import NetworkRequest
from l2sm_core.naming import device_id


def test_both_l2sm_forms():
    assert attachments.parse_l2sm_networks("net-a, net-b") == [
        NetworkRequest("net-a"),
        NetworkRequest("net-b"),
    ]
    text = '[{"name": "net-a", "ips": ["10.0.1.10/24"]}, {"name": "net-b"}]'
    assert attachments.parse_l2sm_networks(text) == [
        NetworkRequest("net-a", ("10.0.1.10/24",)),
        NetworkRequest("net-b"),
    ]
    assert attachments.parse_l2sm_networks("") == []
    rendered = attachments.render_l2sm_networks([NetworkRequest("b", ("10.0.0.2/24",)), NetworkRequest("a")])
    assert json.loads(rendered) == [{"name": "b", "ips": ["10.0.0.2/24"]}, {"name": "a"}]


@pytest.mark.parametrize("text", ["[not json", '[{"ips": []}]', '["net-a"]'])
def test_bad_l2sm_annotation(text):
    with pytest.raises(ValueError, match="l2sm/networks"):
        attachments.parse_l2sm_networks(text)


def _pod(node="node-a", l2sm="", multus="", **meta):
    notes = {attachments.L2SM_NETWORKS_ANNOTATION: l2sm, attachments.MULTUS_NETWORKS_ANNOTATION: multus}
    return {
        "metadata": {"name": "p", "namespace": "ns", "annotations": notes, **meta},
        "spec": {"nodeName": node},
    }


def test_pod_endpoints_follow_order():
    multus = json.dumps(
        [
            {"name": "l2sm-overlay-veth3", "ips": ["fe80::1/64"]},
            {"name": "macvlan-conf"},  # not an L2S-M attachment: skipped
            {"name": "l2sm-overlay-veth7"},
        ]
    )
    result = attachments.read_pod(_pod("node-a", "net-a, net-b", multus)).endpoints()
    dev = device_id("node-a")
    assert result == {"net-a": [f"{dev}/3"], "net-b": [f"{dev}/7"]}


def test_networks_made_outside_juju_may_have_dots():
    # helm and kubectl make L2Networks with any name the API server takes.
    pod = attachments.read_pod(_pod("node-a", "cdn.video-net", "l2sm/ov-veth2@net1"))
    assert pod.problems == ()
    assert pod.endpoints() == {"cdn.video-net": [f"{device_id('node-a')}/2"]}


def test_multus_text_form_and_missing():
    dev = device_id("worker1")
    pod = attachments.read_pod(_pod("worker1", "net-a", "l2sm/ov-veth2@net1"))
    assert pod.endpoints() == {"net-a": [f"{dev}/2"]}
    # Not attached yet: no Multus annotation means no port.
    assert attachments.read_pod(_pod("worker1", "net-a", "")).endpoints() == {}
    # Not scheduled: no node, no port.
    assert attachments.read_pod(_pod("", "net-a", "l2sm/ov-veth2@net1")).endpoints() == {}
    with pytest.raises(ValueError, match="not valid JSON"):
        attachments.multus_attachment_names("[oops")
    assert attachments.veth_port_number("ov-veth0") is None


def test_ports_in_use_per_node():
    pods = [
        _pod("node-a", multus=json.dumps([{"name": "fabric-veth1"}, {"name": "fabric-veth4"}])),
        _pod("node-a", multus="l2sm/fabric-veth2@net1"),
        _pod("node-b", multus=json.dumps([{"name": "other-veth1"}, {"name": "fabric-veth1"}])),
        _pod("", multus=json.dumps([{"name": "fabric-veth9"}])),  # not scheduled: holds nothing
        _pod("node-b", multus="l2sm/fabric-veth5", deletionTimestamp="2026-01-01T00:00:00Z"),  # leaving
    ]
    assert attachments.ports_in_use("fabric", attachments.read_pods(pods)) == {
        "node-a": {1, 2, 4},
        "node-b": {1},
    }


@pytest.mark.parametrize(
    ("l2sm", "multus", "fragment"),
    [
        ('[{"name": "net-a", "ips": 5}]', "", "'ips'"),
        ('[{"name": "Net_A"}]', "", "not a DNS-1123 subdomain"),
        ("net-a, ../x", "", "not a DNS-1123 subdomain"),
        ('{"name": "net-a"}', "", "not a DNS-1123 subdomain"),
        ("[" * 5000 + "]" * 5000, "", "not valid JSON"),
        ("net-a", '{"name": "x"}', ""),  # a Multus object, not a list: names nothing
        ("net-a", '[{"name": 5}, "ov-veth1"]', ""),
        ("net-a", "[oops", "not valid JSON"),
    ],
)
def test_malformed_annotations_are_named_not_raised(l2sm, multus, fragment):
    pod = attachments.read_pod(_pod("node-a", l2sm, multus))
    assert pod.pod == "ns/p"
    if fragment:
        assert any(fragment in problem for problem in pod.problems)
    assert pod.endpoints() == {} or pod.problems == ()


_text = st.one_of(
    st.text(max_size=60),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["name", "ips"]), inner),
        max_leaves=12,
    ).map(json.dumps),
)


@given(
    l2sm=_text,
    multus=_text,
    spec=st.one_of(st.none(), st.text(max_size=5), st.fixed_dictionaries({"nodeName": _text})),
)
def test_any_pod_reads_without_raising(l2sm, multus, spec):
    pod = _pod("node-a", l2sm, multus)
    pod["spec"] = spec
    read = attachments.read_pod(pod)
    for network, endpoints in read.endpoints().items():
        assert attachments.dns1123_subdomain(network) == network
        assert endpoints


def _live(uid, l2sm, multus, created="2026-12-01T10:00:00Z"):
    pod = _pod("node-a", l2sm, multus, uid=uid, creationTimestamp=created)
    return attachments.read_pod(pod)


def test_ports_stay_where_a_pod_was_first_seen_whatever_its_annotations_say_later():
    dev = device_id("node-a")
    multus = "l2sm/ov-veth1@net1, l2sm/ov-veth2@net2"
    first = attachments.settle_endpoints([_live("u1", "net-a, net-b", multus)], {})
    assert first.pods[0][1] == {"net-a": [f"{dev}/1"], "net-b": [f"{dev}/2"]}
    assert first.edited == ()
    # `kubectl annotate --overwrite l2sm/networks='net-b, net-a'` on the running pod.
    later = attachments.settle_endpoints([_live("u1", "net-b, net-a", multus)], first.memory)
    assert later.pods[0][1] == first.pods[0][1]
    assert later.edited == ("ns/p",)
    # The same name, a new pod (new uid): read afresh; the old uid is forgotten.
    new = attachments.settle_endpoints([_live("u2", "net-b, net-a", multus)], later.memory)
    assert new.pods[0][1] == {"net-b": [f"{dev}/1"], "net-a": [f"{dev}/2"]}
    assert set(new.memory) == {"u2"}


def test_a_pod_not_attached_yet_is_not_remembered_empty():
    pending = attachments.settle_endpoints([_live("u1", "net-a", "")], {})
    assert pending.memory == {}
    attached = attachments.settle_endpoints([_live("u1", "net-a", "l2sm/ov-veth3@net1")], pending.memory)
    assert attached.pods[0][1] == {"net-a": [f"{device_id('node-a')}/3"]}


def test_creation_time_and_uid_are_read_defensively():
    pod = _live("u1", "net-a", "", created="2026-12-01T10:00:00Z")
    assert pod.uid == "u1" and pod.created is not None and pod.created.year == 2026
    assert _live("u1", "net-a", "", created="yesterday").created is None
    assert attachments.read_pod({"metadata": {"uid": 5}}).uid == ""
