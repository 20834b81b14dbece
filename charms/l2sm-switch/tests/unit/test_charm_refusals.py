"""A refusal keeps serving the last good fabric: a bad option, bad controller data or a bad
pod anywhere in the cluster never deletes, recreates or relabels anything."""

import json
import logging

import pytest
from conftest import APP, CONTROLLER_DATA, NAMESPACE, cluster_snapshot, knf_pod, make_state, nad
from ops import testing

from l2sm_testing import samples


def short(value):
    """A test id that stays readable for 10 kB values."""
    return repr(value)[:40]


def _refused(out, kube, serving, fragment):
    assert out.unit_status.name == "blocked", out.unit_status
    assert fragment in out.unit_status.message
    assert len(out.unit_status.message) < 320  # a 10 kB value is echoed clipped
    assert cluster_snapshot(kube) == serving


@pytest.mark.parametrize(
    "name",
    [
        "ov\n",  # `$` let it pass, the live Overlay was deleted and the API server refused the new one
        "fabric\n",
        "Fabric",
        "fabric ",
        "-fabric",
        "fab.ric",
        "f" * 51,  # -veth64 would not fit
        "f" * 64,
        "my-veth",
        "\u0430bc",
        "x" * 10_000,
    ],
    ids=short,
)
def test_bad_overlay_name_keeps_the_live_overlay(ctx, kube, serving, name):
    out = ctx.run(ctx.on.config_changed(), make_state(config={"overlay-name": name}))
    _refused(out, kube, serving, "option 'overlay-name'")
    assert kube.find("Overlay", APP, NAMESPACE) is not None


@pytest.mark.parametrize("app", ["my-veth-switch", "s" * 51], ids=short)
def test_an_application_name_that_cannot_name_the_overlay(kube, juju_version, app):
    ctx = testing.Context(__import__("charm").L2smSwitchCharm, app_name=app, juju_version=juju_version)
    out = ctx.run(ctx.on.config_changed(), make_state())
    assert out.unit_status.name == "blocked"
    assert "set option 'overlay-name'" in out.unit_status.message
    assert kube.kinds("Overlay") == []
    ctx.run(ctx.on.config_changed(), make_state(config={"overlay-name": "fabric"}))
    assert kube.find("Overlay", "fabric", NAMESPACE) is not None


@pytest.mark.parametrize(
    "image",
    [
        "alexdecb/Talpa:1.3.8",  # repository names are lowercase
        "alexdecb/talpa:",
        "alexdecb/talpa:1.3.8\n",
        "alexdecb//talpa",
        "http://registry.example.com/talpa",
        "alexdecb/talpa@sha256:1234",
        "-talpa",
        ":1.3.8",
        "alexdecb/talpa:1.3.8\u0430",  # a look-alike letter in the tag
        "alexdecb/talpa:" + "1" * 200,
        "x" * 10_000,
    ],
    ids=short,
)
def test_bad_switch_image_keeps_the_live_overlay(ctx, kube, serving, image):
    out = ctx.run(ctx.on.config_changed(), make_state(config={"switch-image": image}))
    _refused(out, kube, serving, "option 'switch-image'")


@pytest.mark.parametrize(
    "image",
    [
        "registry.example.com:5000/l2sm/talpa:1.3.8",
        "alexdecb/talpa@sha256:" + "a" * 64,
        "localhost/talpa",
    ],
)
def test_image_references_are_taken(ctx, kube, image):
    ctx.run(ctx.on.config_changed(), make_state(config={"switch-image": image}))
    spec = kube.find("Overlay", APP, NAMESPACE)["spec"]
    assert spec["switchTemplate"]["spec"]["containers"][0]["image"] == image


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"interfaces-per-node": 0}, "option 'interfaces-per-node'"),
        ({"interfaces-per-node": 65}, "option 'interfaces-per-node'"),
        ({"interfaces-per-node": True}, "option 'interfaces-per-node'"),  # not a count
        ({"nodes": ","}, "option 'nodes'"),
        ({"nodes": "node-a,node-b\nnode-c"}, "option 'nodes'"),
        ({"nodes": "x" * 10_000}, "option 'nodes'"),
        ({"nodes": ",".join(f"gone-{i:03}" for i in range(300))}, "option 'nodes': not in the cluster"),
        ({"topology": "x" * 10_000}, "option 'topology'"),
        ({"topology": "node-a:" + "x" * 10_000}, "option 'topology'"),
        ({"topology": "Full-Mesh"}, "option 'topology'"),
        ({"topology": "node-a:node-a"}, "option 'topology'"),
    ],
    ids=short,
)
def test_bad_options_keep_the_live_fabric(ctx, kube, serving, config, fragment):
    out = ctx.run(ctx.on.config_changed(), make_state(config=config))
    _refused(out, kube, serving, fragment)


def test_every_bad_option_is_named(ctx, kube, serving):
    config = {"interfaces-per-node": 99, "overlay-name": "Bad", "switch-image": "bad image"}
    out = ctx.run(ctx.on.config_changed(), make_state(config=config))
    for option in config:
        assert f"option '{option}'" in out.unit_status.message
    assert cluster_snapshot(kube) == serving


@pytest.mark.parametrize(
    ("key", "raw", "fragment"),
    [
        ("host", "l2sm-controller-sdn.l2sm.svc", "field 'host': not JSON"),
        ("namespace", "{", "field 'namespace': not JSON"),
        ("cluster-ip", json.dumps("0.0.0.0"), "field 'cluster-ip'"),
        ("cluster-ip", json.dumps("127.0.0.1"), "field 'cluster-ip'"),
        ("cluster-ip", json.dumps("x" * 10_000), "field 'cluster-ip'"),
        ("ready", json.dumps("yes"), "field 'ready'"),
        ("ready", json.dumps(1), "field 'ready'"),
        ("openflow-port", json.dumps("6633"), "field 'openflow-port'"),
        ("openflow-port", json.dumps(0), "field 'openflow-port'"),
        ("namespace", json.dumps("l2sm\n"), "field 'namespace'"),
    ],
    ids=short,
)
def test_bad_controller_data_keeps_the_live_fabric(ctx, kube, serving, key, raw, fragment):
    data = {k: json.dumps(v) for k, v in CONTROLLER_DATA.items()} | {key: raw}
    relation = testing.Relation("controller", remote_app_name="l2sm-controller", remote_app_data=data)
    out = ctx.run(ctx.on.relation_changed(relation), make_state(relations={relation}))
    assert out.unit_status.name in ("blocked", "waiting")
    assert fragment in out.unit_status.message
    assert len(out.unit_status.message) < 320
    assert cluster_snapshot(kube) == serving


# -- a bad pod anywhere in the cluster ---------------------------------------------------


def _bad_pods():
    broken_networks = samples.l2sm_pod("tenant-1", "node-b", [f"{APP}-veth5"], namespace="tenant")
    broken_networks["metadata"]["annotations"]["l2sm/networks"] = '[{"name": "Bad Net"}]'
    broken_multus = samples.l2sm_pod("tenant-2", "node-c", [], namespace="tenant")
    broken_multus["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = "[{not json"
    odd = samples.l2sm_pod("tenant-3", "node-a", [], namespace="tenant")
    odd["metadata"]["annotations"] = {
        "k8s.v1.cni.cncf.io/networks": json.dumps({"name": "x"}),
        "l2sm/networks": "[" * 3000,
    }
    return [broken_networks, broken_multus, odd]


def test_a_bad_pod_is_named_and_skipped(ctx, kube, caplog):
    ctx.run(ctx.on.config_changed(), make_state())
    for pod in _bad_pods():
        kube.add(pod)
    kube.add(knf_pod("router-0", "node-b", [7]))
    kube.add(nad(APP, 7))
    caplog.set_level(logging.WARNING)
    out = ctx.run(ctx.on.update_status(), make_state())
    for name in ("tenant/tenant-1", "tenant/tenant-2", "tenant/tenant-3"):
        assert name in caplog.text
    # The good pod's port is still marked, the reconcile went on.
    labels = kube.find("NetworkAttachmentDefinition", f"{APP}-veth7", NAMESPACE)["metadata"]["labels"]
    assert labels["used-node-b"] == "true"
    assert out.unit_status.name == "waiting"  # switches starting: not an error


def test_ports_of_good_pods_still_count_beside_bad_ones(ctx, kube):
    ctx.run(ctx.on.config_changed(), make_state())
    for pod in _bad_pods():
        kube.add(pod)
    kube.add(knf_pod("router-0", "node-b", [7]))
    before = cluster_snapshot(kube)
    out = ctx.run(ctx.on.config_changed(), make_state(config={"interfaces-per-node": 4}))
    assert out.unit_status == testing.BlockedStatus(
        "option 'interfaces-per-node': 4 is below ports in use (port 7 on node-b)"
    )
    assert cluster_snapshot(kube) == before
    ctx.run(ctx.on.action("show-topology"), make_state())
    nodes = {n["name"]: n for n in json.loads(ctx.action_results["nodes"])}
    # tenant-1's Multus list still reads: the port it holds counts, its bad request does not stop it.
    assert nodes["node-b"]["ports-in-use"] == [5, 7]
