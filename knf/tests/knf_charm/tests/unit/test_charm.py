"""A KNF charm's unit tests through l2sm_knf's testing helpers: no cluster, no root."""

from __future__ import annotations

from ops import testing

from l2sm_knf import NetworkLostEvent, NetworkReadyEvent
from l2sm_knf.l2sm_network import network_relation, published_request

UNIT = "test-knf/0"


def test_joining_a_network_configures_its_interface(ctx, cluster):
    net = network_relation("net-a", "10.0.1.0/24", assignments={UNIT: "10.0.1.10/24"})
    state = testing.State(leader=True, relations={net}, config={"addresses": "net-a=10.0.1.10/24"})
    out = ctx.run(ctx.on.config_changed(), state)
    assert published_request(out.get_relation(net.id)).address == "10.0.1.10/24"
    assert cluster.networks() == ["net-a"] and cluster.net_admin() == ["charm"]
    assert out.unit_status == testing.MaintenanceStatus("restarting pods to change their L2S-M networks")

    cluster.restart_pods()  # Kubernetes recreates the pod; L2S-M attaches net-a as net1
    out = ctx.run(ctx.on.start(), out)
    [plan] = cluster.applied[-1]
    assert (plan.ifname, plan.addresses, plan.mtu, plan.routes) == ("net1", ("10.0.1.10/24",), 1400, ())
    assert out.unit_status == testing.ActiveStatus("net-a 10.0.1.10/24 on net1")
    assert [e.network for e in ctx.emitted_events if isinstance(e, NetworkReadyEvent)] == ["net-a"]
    assert out.workload_version == "net-a=10.0.1.10/24"  # the charm read it from `memberships`


def test_a_bad_addresses_option_is_blocked_naming_it(ctx, cluster):
    net = network_relation("net-a", "10.0.1.0/24")
    out = ctx.run(
        ctx.on.config_changed(), testing.State(relations={net}, config={"addresses": "net-a=10.0.1.10"})
    )
    assert out.unit_status == testing.BlockedStatus(
        "option 'addresses': 'net-a=10.0.1.10': give the prefix length, e.g. net-a=10.0.1.10/24"
    )
    assert "address" not in out.get_relation(net.id).local_unit_data  # nothing asked for


def test_a_router_offers_its_other_networks(ctx, cluster):
    a, b = network_relation("net-a", "10.0.1.0/24"), network_relation("net-b", "10.0.2.0/24")
    out = ctx.run(
        ctx.on.config_changed(), testing.State(leader=True, relations={a, b}, config={"forwards": True})
    )
    assert published_request(out.get_relation(a.id)).offered_prefixes == ["10.0.2.0/24"]
    assert published_request(out.get_relation(b.id)).offered_prefixes == ["10.0.1.0/24"]
    assert cluster.net_admin() == ["charm", "workload"]  # the workload routes: NET_ADMIN too


def test_leaving_a_network_detaches_it(ctx, cluster):
    a = network_relation("net-a", "10.0.1.0/24", assignments={UNIT: "10.0.1.2/24"})
    b = network_relation("net-b", "10.0.2.0/24", assignments={UNIT: "10.0.2.2/24"})
    out = ctx.run(ctx.on.config_changed(), testing.State(leader=True, relations={a, b}))
    cluster.restart_pods()
    out = ctx.run(ctx.on.update_status(), out)
    out = ctx.run(ctx.on.relation_broken(out.get_relation(b.id)), out)
    assert cluster.networks() == ["net-a"]
    assert [p.addresses for p in cluster.applied[-1]] == [("10.0.1.2/24",), ()]  # net2 emptied
    assert [e.network for e in ctx.emitted_events if isinstance(e, NetworkLostEvent)] == ["net-b"]


def test_without_trust(ctx, cluster):
    cluster.forbidden = True
    out = ctx.run(ctx.on.config_changed(), testing.State(leader=True, relations={network_relation("net-a")}))
    assert out.unit_status == testing.BlockedStatus(
        "deploy with --trust (juju trust test-knf --scope=cluster)"
    )
