"""The router's wiring: networks joined as a router, the ruleset rendered, loaded only when it
changed (and again on a new pod), the Pebble layer, and every status it settles in."""

from __future__ import annotations

import dataclasses
import json

import charm
import ops
import pytest
from conftest import ADDRESSES, APP, NFT_OK, UNIT, networks, nft_runs, router_container, settle
from ops import testing

from l2sm_core.cdn.firewall import build_firewall, parse_rules
from l2sm_core.cdn.render import render_ruleset
from l2sm_knf.l2sm_network import network_relation, published_request

WEB = "- {name: web, from: clients, to: caches, protocol: tcp, port: 80}"
# The L2S-M interfaces FakeCluster attaches, in the networks' sorted order.
JOINED = [{"name": "caches", "interface": "net1"}, {"name": "clients", "interface": "net2"}]


def expected_ruleset(rules: str = "", policy: str = "drop", cut=(), action_rules=()) -> str:
    networks = [
        {"name": "caches", "interface": "net1", "prefix": "10.0.2.0/24"},
        {"name": "clients", "interface": "net2", "prefix": "10.0.1.0/24"},
    ]
    return render_ruleset(build_firewall(networks, [*parse_rules(rules), *action_rules], policy, cut))


def loaded(etc) -> str:
    return (etc / "ruleset.nft").read_text()


def test_joins_both_networks_as_a_router(ctx, cluster, etc):
    a, b = networks()
    out = ctx.run(
        ctx.on.config_changed(),
        testing.State(
            leader=True, relations={a, b}, containers={router_container(etc)}, config={"addresses": ADDRESSES}
        ),
    )
    # Each network is offered the other's prefix: its members get a route via the router.
    assert published_request(out.get_relation(a.id)).offered_prefixes == ["10.0.2.0/24"]
    assert published_request(out.get_relation(b.id)).offered_prefixes == ["10.0.1.0/24"]
    assert published_request(out.get_relation(a.id)).address == "10.0.1.1/24"
    assert cluster.networks() == ["caches", "clients"]
    assert cluster.net_admin() == ["charm", "router"]  # nft runs in the router container
    assert out.unit_status == testing.MaintenanceStatus("restarting pods to change their L2S-M networks")


def test_settles_active_with_the_ruleset_loaded(ctx, cluster, etc):
    out = settle(ctx, cluster, etc, config={"rules": WEB})
    assert out.unit_status == testing.ActiveStatus(
        "caches 10.0.2.1/24 on net1; clients 10.0.1.1/24 on net2; firewall: 1 rules, policy drop"
    )
    assert loaded(etc) == expected_ruleset(WEB)
    assert 'iifname "net2" oifname "net1" tcp dport 80 counter accept comment "web"' in loaded(etc)
    plan = out.get_container("router").plan
    assert plan.services["router"].command == "tail -f /dev/null"
    assert plan.checks["ruleset"].exec == {"command": "nft list table inet cdn_router"}


def test_nft_runs_only_when_the_ruleset_changes(ctx, cluster, etc):
    out = settle(ctx, cluster, etc)
    out = ctx.run(ctx.on.update_status(), out)
    assert nft_runs(ctx) == []  # same ruleset: nothing run
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={**out.config, "rules": WEB}))
    assert nft_runs(ctx) == [expected_ruleset(WEB)]
    assert loaded(etc) == expected_ruleset(WEB)
    out = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(out, config={**out.config, "default-policy": "accept"})
    )
    assert nft_runs(ctx) == [expected_ruleset(WEB, "accept")]
    assert out.unit_status.message.endswith("firewall: 1 rules, policy accept")


def test_a_new_pod_gets_the_ruleset_again_on_pebble_ready(ctx, cluster, etc):
    out = settle(ctx, cluster, etc, config={"rules": WEB})
    container = out.get_container("router")
    ctx.run(ctx.on.pebble_ready(container), out)
    assert nft_runs(ctx) == [expected_ruleset(WEB)]  # same file, but a new pod's kernel table is empty


def test_a_failing_check_reloads_the_ruleset(ctx, cluster, etc):
    out = settle(ctx, cluster, etc)
    down = testing.CheckInfo("ruleset", status=ops.pebble.CheckStatus.DOWN, failures=3)
    container = dataclasses.replace(out.get_container("router"), check_infos={down})
    ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers={container}))
    assert nft_runs(ctx) == [expected_ruleset()]


def test_a_check_failed_event_reloads_the_ruleset_at_once(ctx, cluster, etc, juju_version):
    if juju_version.startswith("2."):
        pytest.skip("Juju 2.9 has no Pebble check events: update-status does it (test above)")
    out = settle(ctx, cluster, etc)
    down = testing.CheckInfo("ruleset", status=ops.pebble.CheckStatus.DOWN, failures=3)
    container = dataclasses.replace(out.get_container("router"), check_infos={down})
    ctx.run(ctx.on.pebble_check_failed(container, down), dataclasses.replace(out, containers={container}))
    assert nft_runs(ctx) == [expected_ruleset()]


def test_the_layer_is_replanned_only_when_it_changes(ctx, cluster, etc):
    out = settle(ctx, cluster, etc)
    container = out.get_container("router")
    assert container.service_statuses == {"router": ops.pebble.ServiceStatus.ACTIVE}
    layers = dict(container.layers)
    out = ctx.run(ctx.on.update_status(), out)
    assert dict(out.get_container("router").layers) == layers


def test_forwarding_off_is_blocked_naming_the_sysctl(ctx, cluster, etc, forwarding):
    forwarding.write_text("0\n")
    out = settle(ctx, cluster, etc)
    assert out.unit_status == testing.BlockedStatus(
        "IP forwarding is off in the pod: allow the sysctl net.ipv4.ip_forward on every node "
        "(kubelet --allowed-unsafe-sysctls=net.ipv4.ip_forward), then set ip-forward-sysctl=true"
    )
    assert loaded(etc) == expected_ruleset()  # the firewall still holds, ready for when it forwards
    # Not asked for: a kubelet that refuses the sysctl would refuse the pod, and no hook runs.
    assert "net.ipv4.ip_forward" not in cluster.sysctls()


def test_the_sysctl_is_asked_for_once_the_operator_says_the_kubelets_allow_it(ctx, cluster, etc, forwarding):
    forwarding.write_text("0\n")
    out = settle(ctx, cluster, etc, config={"ip-forward-sysctl": True})
    assert cluster.sysctls() == {"net.ipv4.ip_forward": "1"}
    assert out.unit_status == testing.BlockedStatus(charm.FORWARDING_PENDING)
    forwarding.write_text("1\n")  # the pod restarted with it
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status.name == "active"


def test_forwarding_unreadable_is_blocked(ctx, cluster, etc, forwarding):
    forwarding.unlink()
    out = settle(ctx, cluster, etc)
    # Unreadable counts as off: the router cannot vouch for forwarding it cannot see.
    assert out.unit_status == testing.BlockedStatus(charm.FORWARDING_OFF)


def test_nft_refusing_the_ruleset_is_blocked_until_one_loads(ctx, cluster, etc):
    out = settle(ctx, cluster, etc)
    refusing = testing.Exec(["nft"], return_code=1, stderr="Error: syntax error\n  nope\n")
    container = dataclasses.replace(out.get_container("router"), execs={refusing})
    out = ctx.run(
        ctx.on.config_changed(),
        dataclasses.replace(out, containers={container}, config={**out.config, "rules": WEB}),
    )
    message = "nft refused the ruleset (Error: syntax error nope); the previous ruleset stays loaded"
    assert out.unit_status == testing.BlockedStatus(message)
    assert loaded(etc) == expected_ruleset()  # the file still says what is loaded
    out = ctx.run(ctx.on.action("list-rules"), out)  # no reconcile: the refusal still shows
    assert out.unit_status == testing.BlockedStatus(message)
    container = dataclasses.replace(out.get_container("router"), execs={NFT_OK})
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers={container}))
    assert out.unit_status.name == "active"
    assert loaded(etc) == expected_ruleset(WEB)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (
            ops.pebble.APIError({}, 400, "Bad Request", 'cannot find executable "nft"'),
            testing.BlockedStatus(
                "cannot run nft in the router container (router-image must have nftables): "
                'cannot find executable "nft"'
            ),
        ),
        (
            ops.pebble.TimeoutError("timed out"),
            testing.WaitingStatus("the firewall's ruleset is not loaded yet (juju debug-log says why)"),
        ),
    ],
)
def test_nft_that_cannot_run(ctx, cluster, etc, monkeypatch, error, status):
    out = settle(ctx, cluster, etc)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(ops.Container, "exec", fail)
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={**out.config, "rules": WEB}))
    assert out.unit_status == status
    assert loaded(etc) == expected_ruleset()


def test_router_container_not_up_waits(ctx, cluster, etc):
    out = settle(ctx, cluster, etc)
    container = dataclasses.replace(out.get_container("router"), can_connect=False)
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers={container}))
    assert out.unit_status == testing.WaitingStatus("waiting for the router container (Pebble)")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("default-policy", "reject", "option 'default-policy': Input should be 'drop' or 'accept'"),
        (
            "rules",
            "- {name: web, from: clients, to: caches, protocol: tcp, port: 99999}",
            "option 'rules': rule 1 ('web'): field 'port': Value error, 99999 is not a port (1-65535)",
        ),
        ("rules", "- {from: clients, to: caches}", "option 'rules': rule 1: field 'name': Field required"),
        (
            "rules",
            "- {name: web, from: clients, to: origin}",
            "rule 'web': 'to' names network 'origin', which the router is not on (it is on: caches, clients)",
        ),
    ],
)
def test_bad_options_are_blocked_naming_them(ctx, cluster, etc, option, value, message):
    out = settle(ctx, cluster, etc)
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={**out.config, option: value}))
    assert out.unit_status.name == "blocked"
    assert message.replace("Value error, ", "") in out.unit_status.message
    assert nft_runs(ctx) == []  # the last good ruleset stays
    assert loaded(etc) == expected_ruleset()


def test_a_rule_naming_a_network_still_joining_waits(ctx, cluster, etc):
    a, b = networks()
    out = ctx.run(
        ctx.on.config_changed(),
        testing.State(
            leader=True,
            relations={a, b},
            containers={router_container(etc)},
            config={"addresses": ADDRESSES, "rules": WEB},
        ),
    )
    assert out.unit_status.name in ("maintenance", "waiting")  # not Blocked: it resolves itself
    assert nft_runs(ctx) == []


def test_without_networks_the_router_is_active_with_an_empty_firewall(ctx, cluster, etc):
    out = ctx.run(
        ctx.on.pebble_ready(router_container(etc)),
        testing.State(leader=True, containers={router_container(etc)}),
    )
    assert nft_runs(ctx) == [render_ruleset(build_firewall([]))]
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == testing.ActiveStatus("no L2S-M network; firewall: 0 rules, policy drop")


def test_peer_rules_and_links_are_loaded_on_every_unit(ctx, cluster, etc):
    """A follower (or the unit that replaces cdn-router/0 after scale 0 then 1) loads what the
    app's peer data holds."""
    ping = {"name": "ping", "from": "any", "to": "any", "protocol": "icmp", "action": "accept", "port": None}
    peer = testing.PeerRelation(
        "router-peers",
        local_app_data={"rules": json.dumps([ping]), "cut-links": json.dumps(["caches"])},
    )
    out = settle(ctx, cluster, etc, peer=peer, leader=False)
    [rule] = parse_rules("- {name: ping, from: any, to: any, protocol: icmp}")
    assert loaded(etc) == expected_ruleset(cut=["caches"], action_rules=[rule])
    assert out.unit_status.message.endswith("firewall: 1 rules, policy drop, cut: caches")


def test_a_new_unit_after_scaling_to_zero_gets_the_same_firewall(juju_version, cluster, etc):
    ctx = testing.Context(charm.CdnRouterCharm, app_name=APP, unit_id=1, juju_version=juju_version)
    ping = {"name": "ping", "from": "any", "to": "any", "protocol": "icmp"}
    peer = testing.PeerRelation(
        "router-peers", local_app_data={"rules": json.dumps([ping]), "cut-links": json.dumps(["clients"])}
    )
    out = settle(ctx, cluster, etc, peer=peer, relations=networks(f"{APP}/1"))
    assert out.unit_status.name == "active"
    assert '"ping"' in loaded(etc) and 'elements = { "net2" comment "clients" }' in loaded(etc)


def test_a_cut_link_of_a_network_left_is_kept_but_not_rendered(ctx, cluster, etc):
    peer = testing.PeerRelation("router-peers", local_app_data={"cut-links": json.dumps(["origin"])})
    out = settle(ctx, cluster, etc, peer=peer)
    assert out.unit_status.name == "active"
    assert loaded(etc) == expected_ruleset()
    assert json.loads(out.get_relation(peer.id).local_app_data["cut-links"]) == ["origin"]


def test_unreadable_peer_data_is_blocked(ctx, cluster, etc):
    peer = testing.PeerRelation("router-peers", local_app_data={"rules": "not json"})
    out = settle(ctx, cluster, etc, peer=peer)
    assert out.unit_status == testing.BlockedStatus(
        "unreadable router-peers app data: field 'rules': not JSON"
    )


def test_a_config_rule_taking_an_action_rule_s_name_is_blocked(ctx, cluster, etc):
    web = {"name": "web", "from": "any", "to": "any", "protocol": "any"}
    peer = testing.PeerRelation("router-peers", local_app_data={"rules": json.dumps([web])})
    out = settle(ctx, cluster, etc, peer=peer, config={"rules": WEB})
    assert out.unit_status.name == "blocked"
    assert "action rule 'web': the 'rules' option has a rule of that name" in out.unit_status.message


def test_without_trust(ctx, cluster, etc):
    cluster.forbidden = True
    out = ctx.run(
        ctx.on.config_changed(),
        testing.State(
            leader=True, relations={network_relation("clients")}, containers={router_container(etc)}
        ),
    )
    assert out.unit_status == testing.BlockedStatus(f"deploy with --trust (juju trust {APP} --scope=cluster)")


def test_unit_name(ctx):
    assert UNIT == "cdn-router/0"
