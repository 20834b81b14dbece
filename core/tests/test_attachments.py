import json

import pytest

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


def test_pod_endpoints_follow_order():
    multus = json.dumps(
        [
            {"name": "l2sm-overlay-veth3", "ips": ["fe80::1/64"]},
            {"name": "macvlan-conf"},  # not an L2S-M attachment: skipped
            {"name": "l2sm-overlay-veth7"},
        ]
    )
    result = attachments.pod_endpoints("node-a", "net-a, net-b", multus)
    dev = device_id("node-a")
    assert result == {"net-a": [f"{dev}/3"], "net-b": [f"{dev}/7"]}


def test_multus_text_form_and_missing():
    dev = device_id("worker1")
    assert attachments.pod_endpoints("worker1", "net-a", "l2sm/ov-veth2@net1") == {"net-a": [f"{dev}/2"]}
    # Not attached yet: no Multus annotation means no port.
    assert attachments.pod_endpoints("worker1", "net-a", "") == {}
    with pytest.raises(ValueError, match="not valid JSON"):
        attachments.multus_attachment_names("[oops")
    assert attachments.veth_port_number("ov-veth0") is None


def test_ports_in_use_per_node():
    pods = [
        ("node-a", json.dumps([{"name": "fabric-veth1"}, {"name": "fabric-veth4"}])),
        ("node-a", "l2sm/fabric-veth2@net1"),
        ("node-b", json.dumps([{"name": "other-veth1"}, {"name": "fabric-veth1"}])),
        ("", json.dumps([{"name": "fabric-veth9"}])),  # not scheduled: holds nothing
    ]
    assert attachments.ports_in_use("fabric", pods) == {"node-a": {1, 2, 4}, "node-b": {1}}
