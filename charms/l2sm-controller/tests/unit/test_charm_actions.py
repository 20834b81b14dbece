"""Day-2 actions, each bad input failing with the parameter named and nothing changed."""

import json

import pytest
from conftest import APP, NAMESPACE, l2network, l2sm_pod, make_state
from ops import testing

from l2sm_controlplane.crds import validate_custom_object
from l2sm_core.manifests import OWNER, OWNER_KIND

APP_OWNED = {OWNER_KIND: "application", OWNER: "my-first-osm-net"}


pytestmark = pytest.mark.usefixtures("crds_installed")


def _action(ctx, action, oar_dir, **params):
    return ctx.run(ctx.on.action(action, params=params), make_state(oar_dir))


def _fails(ctx, oar_dir, action, kube, fragment, **params):
    before = dict(kube.objects), list(kube.writes)
    with pytest.raises(testing.ActionFailed) as info:
        _action(ctx, action, oar_dir, **params)
    assert fragment in info.value.message
    assert (dict(kube.objects), list(kube.writes)) == before  # nothing changed
    return info.value.message


def test_create_network_pure_l2_and_with_cidr(ctx, kube, controller, oar_dir):
    _action(ctx, "create-network", oar_dir, name="net-a", **{"application-name": APP})
    assert ctx.action_results == {"name": "net-a", "namespace": NAMESPACE, "cidr": "none (L2 only)"}
    created = kube.find("L2Network", "net-a", NAMESPACE)
    validate_custom_object(created)
    assert created["spec"] == {"type": "vnet"}
    assert created["metadata"]["labels"][OWNER_KIND] == "action"

    _action(ctx, "create-network", oar_dir, name="net-b", cidr=" 10.0.2.0/24")
    assert kube.find("L2Network", "net-b", NAMESPACE)["spec"]["networkCIDR"] == "10.0.2.0/24"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"name": "Net_A"}, "parameter 'name': 'Net_A' is not a DNS-1123 label"),
        ({"name": "x" * 64}, "parameter 'name': must be at most 63"),
        ({"name": "net-a", "cidr": "10.0.1.5/24"}, "parameter 'cidr': '10.0.1.5/24' has host bits set"),
        ({"name": "net-a", "cidr": "fd00::/64"}, "parameter 'cidr': 'fd00::/64' is IPv6"),
        ({"name": "net-a", "cidr": "banana"}, "parameter 'cidr'"),
    ],
)
def test_create_network_bad_input(ctx, kube, controller, oar_dir, params, fragment):
    _fails(ctx, oar_dir, "create-network", kube, fragment, **params)


def test_create_network_name_taken_anywhere(ctx, kube, controller, oar_dir):
    kube.add(l2network("net-a", namespace="cdn", labels=APP_OWNED))
    _fails(ctx, oar_dir, "create-network", kube, "already exists in namespace 'cdn'", name="net-a")


def test_list_and_show(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    controller.hold("net-a")
    kube.add(l2network("net-a", labels=APP_OWNED, status={"connectedPodCount": 1}))
    kube.add(l2network("net-b", namespace="helm"))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))

    _action(ctx, "list-networks", oar_dir)
    rows = json.loads(ctx.action_results["networks"])
    assert ctx.action_results["count"] == 2
    assert rows[0] == {
        "name": "net-a",
        "namespace": NAMESPACE,
        "type": "vnet",
        "owner": "l2sm-network application 'my-first-osm-net'",
        "connected-pods": 1,
        "controller": "present",
    }
    assert (rows[1]["owner"], rows[1]["controller"]) == ("none in Juju, made with helm or kubectl?", "absent")

    _action(ctx, "show-network", oar_dir, name="net-a")
    assert json.loads(ctx.action_results["attached-pods"]) == ["knfs/cache-0"]
    assert ctx.action_results["controller"].startswith("Id: net-a")

    _fails(ctx, oar_dir, "show-network", kube, "no L2Network named 'net-z'", name="net-z")
    _fails(ctx, oar_dir, "show-network", kube, "parameter 'name'", name="NET")


def test_show_with_controller_down(ctx, kube, controller, oar_dir):
    kube.add(l2network("net-a"))
    controller.onos_up = False
    _action(ctx, "show-network", oar_dir, name="net-a")
    assert ctx.action_results["controller"].startswith("unavailable")
    _action(ctx, "list-networks", oar_dir)
    assert json.loads(ctx.action_results["networks"])[0]["controller"].startswith("unknown")


def test_delete_refuses_application_owned(ctx, kube, controller, oar_dir):
    kube.add(l2network("my-first-osm-net", labels=APP_OWNED))
    message = _fails(
        ctx, oar_dir, "delete-network", kube, "owned by the l2sm-network application", name="my-first-osm-net"
    )
    assert "juju remove-application my-first-osm-net" in message


def test_delete_refuses_attached_unless_forced(ctx, kube, controller, oar_dir):
    kube.add(l2network("net-a", labels={OWNER_KIND: "action", OWNER: APP}))
    kube.add(l2sm_pod("cache-0", "node-a", ["net-a"], [3]))
    kube.add(l2sm_pod("gone-0", "node-a", ["net-a"], [4], deleting=True))
    _fails(ctx, oar_dir, "delete-network", kube, "parameter 'force': 1 pod(s) are attached", name="net-a")
    _action(ctx, "delete-network", oar_dir, name="net-a", force=True)
    assert kube.find("L2Network", "net-a", NAMESPACE) is None
    assert json.loads(ctx.action_results["detached-pods"]) == ["knfs/cache-0"]


def test_delete_refuses_unmanaged_unless_forced(ctx, kube, controller, oar_dir):
    kube.add(l2network("helm-net", namespace="helm"))
    _fails(ctx, oar_dir, "delete-network", kube, "was not made by create-network", name="helm-net")
    _action(ctx, "delete-network", oar_dir, name="helm-net", force=True)
    assert kube.find("L2Network", "helm-net", "helm") is None


def test_delete_missing_and_bad(ctx, kube, controller, oar_dir):
    _fails(ctx, oar_dir, "delete-network", kube, "no L2Network named 'net-a'", name="net-a")
    _fails(ctx, oar_dir, "delete-network", kube, "parameter 'name'", name="-bad")


def test_delete_unused(ctx, kube, controller, oar_dir):
    kube.add(l2network("net-a", labels={OWNER_KIND: "action", OWNER: APP}))
    _action(ctx, "delete-network", oar_dir, name="net-a")
    assert kube.find("L2Network", "net-a", NAMESPACE) is None


def test_controller_status(ctx, kube, controller, oar_dir):
    controller.vnets_installed = True
    controller.devices = {"of:e5e40be8c6b4bf54": True, "of:cc4d87e0ca1f6b49": False}
    _action(ctx, "controller-status", oar_dir)
    results = ctx.action_results
    assert (results["last-repair"], results["last-repair-summary"]) == ("never", "")
    assert results["rest"] == "ready"
    assert results["switches-connected"] == 1
    assert json.loads(results["switches"])[1] == {"id": "of:cc4d87e0ca1f6b49", "available": False}
    assert results["last-resync"] == "never"

    controller.onos_up = False
    _action(ctx, "controller-status", oar_dir)
    assert ctx.action_results["rest"].startswith("not ready")


@pytest.mark.parametrize("action", ["list-networks", "controller-status", "create-network"])
def test_actions_refused_on_extra_units(ctx, kube, controller, oar_dir, action):
    params = {"name": "net-a"} if action == "create-network" else {}
    with pytest.raises(testing.ActionFailed) as info:
        ctx.run(ctx.on.action(action, params=params), make_state(oar_dir, leader=False))
    assert info.value.message == f"run this on the leader unit: {ctx.juju_run(f'{APP}/leader', action)}"
    assert kube.writes == []


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("list-networks", {}),
        ("show-network", {"name": "net-a"}),
        ("create-network", {"name": "net-a"}),
        ("delete-network", {"name": "net-a"}),
    ],
)
def test_actions_without_trust(ctx, kube, controller, oar_dir, action, params):
    kube.forbidden = True
    with pytest.raises(testing.ActionFailed, match="deploy with --trust"):
        _action(ctx, action, oar_dir, **params)


def test_networks_made_outside_juju_may_have_dots(ctx, kube, controller, oar_dir):
    # Any Kubernetes object name (a DNS-1123 subdomain): helm and kubectl make such networks.
    kube.add(l2network("cdn.video-net", namespace="helm"))
    _action(ctx, "show-network", oar_dir, name="cdn.video-net")
    assert (ctx.action_results["name"], ctx.action_results["namespace"]) == ("cdn.video-net", "helm")
    _fails(ctx, oar_dir, "delete-network", kube, "rerun with force=true", name="cdn.video-net")
    _action(ctx, "delete-network", oar_dir, name="cdn.video-net", force=True)
    assert kube.find("L2Network", "cdn.video-net", "helm") is None
    # create-network makes names every charm and the webhook take alike: labels only.
    message = _fails(ctx, oar_dir, "create-network", kube, "parameter 'name'", name="cdn.video-net")
    assert "DNS-1123 label" in message
    for action in ("show-network", "delete-network"):
        _fails(ctx, oar_dir, action, kube, "is not a DNS-1123 subdomain", name="cdn..video-net")
