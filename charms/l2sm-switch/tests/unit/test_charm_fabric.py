"""The Overlay follows config and cluster: nodes, links, interfaces, image; bad input changes nothing."""

import json
import logging

import pytest
from conftest import APP, NAMESPACE, knf_pod, make_state, nad, replica_set
from ops import testing

from l2sm_controlplane.crds import validate_custom_object


def _overlay(kube, name=APP):
    return kube.find("Overlay", name, NAMESPACE)


def _ready(kube, nodes, overlay=APP, ready=1):
    uid = _overlay(kube, overlay)["metadata"]["uid"]
    for n in nodes:
        kube.add(replica_set(overlay, n, ready=ready, owner_uid=uid))


def test_default_fabric_spans_schedulable_linux_nodes(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), make_state())
    overlay = _overlay(kube)
    validate_custom_object(overlay)
    spec = overlay["spec"]
    assert spec["topology"]["nodes"] == ["node-a", "node-b", "node-c"]
    assert len(spec["topology"]["links"]) == 3
    assert spec["provider"]["domain"] == ["10.152.183.20"]  # by IP: switch pods may lack cluster DNS
    assert spec["interfaceNumber"] == 10
    assert "set-fail-mode" in spec["switchTemplate"]["spec"]["containers"][0]["command"][2]
    # Created in the controller's namespace, where the operator looks for attachments.
    assert overlay["metadata"]["namespace"] == NAMESPACE
    assert out.unit_status == testing.WaitingStatus("0/3 switches ready; waiting on node-a, node-b, node-c")


def test_status_counts_ready_switches(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    _ready(kube, ["node-a", "node-b"])
    _ready(kube, ["node-c"], ready=0)
    out = ctx.run(ctx.on.update_status(), make_state())
    assert out.unit_status == testing.WaitingStatus("2/3 switches ready; waiting on node-c")
    _ready(kube, ["node-c"])
    out = ctx.run(ctx.on.update_status(), make_state())
    assert out.unit_status == testing.ActiveStatus("3/3 switches ready")


def test_unchanged_config_writes_nothing(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    writes = list(kube.writes)
    ctx.run(ctx.on.update_status(), make_state())
    assert kube.writes == writes


@pytest.mark.parametrize(
    ("config", "check"),
    [
        ({"nodes": "node-a,node-b"}, lambda s: s["topology"]["nodes"] == ["node-a", "node-b"]),
        ({"topology": "node-a:node-b,node-b:node-c"}, lambda s: len(s["topology"]["links"]) == 2),
        ({"interfaces-per-node": 16}, lambda s: s["interfaceNumber"] == 16),
        (
            {"switch-image": "example/talpa:dev"},
            lambda s: s["switchTemplate"]["spec"]["containers"][0]["image"] == "example/talpa:dev",
        ),
    ],
)
def test_changes_recreate_the_overlay(ctx, kube, caplog, config, check):
    ctx.run(ctx.on.config_changed(), make_state())
    caplog.set_level(logging.WARNING)
    ctx.run(ctx.on.config_changed(), make_state(config=config))
    assert check(_overlay(kube)["spec"])
    assert ("delete", "Overlay", NAMESPACE, APP) in kube.writes
    assert "recreating the switch overlay: L2S-M traffic is interrupted" in caplog.text


def test_new_cluster_node_gets_a_switch(ctx, kube):
    from conftest import node

    ctx.run(ctx.on.config_changed(), make_state())
    kube.add(node("node-d"))
    ctx.run(ctx.on.update_status(), make_state())
    assert _overlay(kube)["spec"]["topology"]["nodes"] == ["node-a", "node-b", "node-c", "node-d"]


def test_recreate_waits_for_the_operator(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    kube.objects[("Overlay", NAMESPACE, APP)]["metadata"]["finalizers"] = ["l2sm.operator.io/finalizer"]
    out = ctx.run(ctx.on.config_changed(), make_state(config={"nodes": "node-a,node-b"}))
    assert out.unit_status == testing.MaintenanceStatus(
        "recreating the switch overlay: L2S-M traffic is interrupted"
    )
    assert _overlay(kube)["metadata"]["deletionTimestamp"]
    kube.finish_deletion("Overlay", APP, NAMESPACE)  # the operator's finalizer ran
    ctx.run(ctx.on.update_status(), make_state(config={"nodes": "node-a,node-b"}))
    assert _overlay(kube)["spec"]["topology"]["nodes"] == ["node-a", "node-b"]


def test_rename_deletes_the_old_overlay(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    ctx.run(ctx.on.config_changed(), make_state(config={"overlay-name": "fabric"}))
    assert _overlay(kube) is None
    assert _overlay(kube, "fabric") is not None


def test_recreated_attachments_marked_used(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    kube.add(nad(APP, 1))
    kube.add(nad(APP, 2, labels={"used-node-b": "true"}))
    kube.add(knf_pod("cache-0", "node-a", [1]))
    kube.add(knf_pod("router-0", "node-b", [2]))
    kube.add(knf_pod("old-0", "node-c", [3], deleting=True))
    writes = len(kube.writes)
    ctx.run(ctx.on.update_status(), make_state())
    assert (
        kube.find("NetworkAttachmentDefinition", f"{APP}-veth1", NAMESPACE)["metadata"]["labels"][
            "used-node-a"
        ]
        == "true"
    )
    assert kube.find("NetworkAttachmentDefinition", f"{APP}-veth1", NAMESPACE)["spec"] == {"config": "{}"}
    assert kube.writes[writes:] == [("patch", "NetworkAttachmentDefinition", NAMESPACE, f"{APP}-veth1")]


def test_nodes_sharing_an_attachment_keep_both_marks(ctx, kube):
    # NADs are shared by all nodes: marking node-b must not drop node-a's mark.
    ctx.run(ctx.on.config_changed(), make_state())
    kube.add(nad(APP, 1))
    kube.add(knf_pod("cache-0", "node-a", [1]))
    kube.add(knf_pod("cache-1", "node-b", [1]))
    ctx.run(ctx.on.update_status(), make_state())
    labels = kube.find("NetworkAttachmentDefinition", f"{APP}-veth1", NAMESPACE)["metadata"]["labels"]
    assert (labels["used-node-a"], labels["used-node-b"]) == ("true", "true")
    ctx.run(ctx.on.update_status(), make_state())
    labels = kube.find("NetworkAttachmentDefinition", f"{APP}-veth1", NAMESPACE)["metadata"]["labels"]
    assert (labels["used-node-a"], labels["used-node-b"]) == ("true", "true")


def test_a_previous_overlays_switches_do_not_count(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    for n in ("node-a", "node-b", "node-c"):
        kube.add(replica_set(APP, n, owner_uid="uid-of-the-old-overlay"))
    out = ctx.run(ctx.on.update_status(), make_state())
    assert out.unit_status == testing.WaitingStatus("0/3 switches ready; waiting on node-a, node-b, node-c")


def test_recreate_removes_the_old_switches_first(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    _ready(kube, ["node-a", "node-b", "node-c"])
    ctx.run(ctx.on.config_changed(), make_state(config={"interfaces-per-node": 12}))
    # Foreground deletion: the old Overlay's ReplicaSets went with it.
    assert kube.kinds("ReplicaSet") == []
    assert _overlay(kube)["spec"]["interfaceNumber"] == 12


def test_node_added_through_config(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state(config={"nodes": "node-a"}))
    assert _overlay(kube)["spec"]["topology"] == {"nodes": ["node-a"], "links": []}
    ctx.run(ctx.on.config_changed(), make_state(config={"nodes": "node-a,node-b"}))
    assert _overlay(kube)["spec"]["topology"]["nodes"] == ["node-a", "node-b"]


def test_cordoned_node_keeps_its_switch(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    kube.objects[("Node", "", "node-b")]["spec"]["unschedulable"] = True
    writes = list(kube.writes)
    ctx.run(ctx.on.update_status(), make_state())
    assert kube.writes == writes  # no recreate for a cordon
    assert _overlay(kube)["spec"]["topology"]["nodes"] == ["node-a", "node-b", "node-c"]


def test_rename_refused_while_ports_are_held(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    kube.add(knf_pod("cache-0", "node-a", [2]))
    writes = list(kube.writes)
    out = ctx.run(ctx.on.config_changed(), make_state(config={"overlay-name": "fabric"}))
    assert out.unit_status.name == "blocked"
    assert "pods on node-a hold ports of overlay 'l2sm-switch'" in out.unit_status.message
    assert kube.writes == writes


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"nodes": "node-a,Node_B"}, "option 'nodes'"),
        ({"nodes": "node-a,node-z"}, "option 'nodes': not in the cluster: node-z"),
        ({"topology": "node-a:node-x"}, "option 'topology': link 'node-a:node-x' names 'node-x'"),
        ({"topology": " "}, "option 'topology'"),
        ({"interfaces-per-node": 0}, "option 'interfaces-per-node'"),
        ({"interfaces-per-node": 65}, "option 'interfaces-per-node'"),
        ({"overlay-name": "my-veth-net"}, "contains 'veth'"),
        ({"overlay-name": "Bad"}, "option 'overlay-name'"),
        ({"switch-image": "bad image"}, "option 'switch-image'"),
    ],
)
def test_bad_config_blocks_and_changes_nothing(ctx, kube, config, fragment):
    ctx.run(ctx.on.config_changed(), make_state())
    before = json.dumps(sorted(kube.objects.items()), sort_keys=True, default=str)
    writes = list(kube.writes)
    out = ctx.run(ctx.on.config_changed(), make_state(config=config))
    assert out.unit_status.name == "blocked"
    assert fragment in out.unit_status.message
    assert kube.writes == writes
    assert json.dumps(sorted(kube.objects.items()), sort_keys=True, default=str) == before


def test_interfaces_below_ports_in_use_refused(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    kube.add(knf_pod("cache-0", "node-b", [7]))
    writes = list(kube.writes)
    out = ctx.run(ctx.on.config_changed(), make_state(config={"interfaces-per-node": 4}))
    assert out.unit_status == testing.BlockedStatus(
        "option 'interfaces-per-node': 4 is below ports in use (port 7 on node-b)"
    )
    assert kube.writes == writes


def test_isolated_node_is_reported(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state(config={"topology": "node-a:node-b"}))
    _ready(kube, ["node-a", "node-b", "node-c"])
    out = ctx.run(ctx.on.update_status(), make_state(config={"topology": "node-a:node-b"}))
    assert out.unit_status == testing.ActiveStatus("3/3 switches ready; no links to node-c")


def test_after_a_recreate_held_ports_are_marked_in_the_same_hook(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    kube.add(knf_pod("cache-0", "node-a", [2]))
    real_get = kube.get
    polls = {"n": 0}

    def operator_makes_nads_a_little_later(res, name, *, namespace=None):
        # The operator makes the new Overlay's NADs a moment after the Overlay appears.
        if res._api_info.resource.kind == "NetworkAttachmentDefinition":
            polls["n"] += 1
            if polls["n"] == 2:
                kube.add(nad(APP, 2))
        return real_get(res, name, namespace=namespace)

    kube.get = operator_makes_nads_a_little_later
    ctx.run(ctx.on.config_changed(), make_state(config={"interfaces-per-node": 12}))
    labels = kube.find("NetworkAttachmentDefinition", f"{APP}-veth2", NAMESPACE)["metadata"]["labels"]
    assert labels["used-node-a"] == "true"
