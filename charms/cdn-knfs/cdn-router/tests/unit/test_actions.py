"""Every action: what it does to the peer data and the loaded ruleset, and its refusals
(which change neither)."""

from __future__ import annotations

import dataclasses
import json

import charm
import pytest
from conftest import nft_runs, settle
from ops import testing

WEB = "- {name: web, from: clients, to: caches, protocol: tcp, port: 80}"


@pytest.fixture
def settled(ctx, cluster, etc):
    return settle(ctx, cluster, etc, config={"rules": WEB})


def peer_data(state: testing.State) -> dict:
    [peer] = [r for r in state.relations if r.endpoint == "router-peers"]
    return {k: json.loads(v) for k, v in peer.local_app_data.items()}


def run(ctx, state, action_name, /, **params):
    return ctx.run(ctx.on.action(action_name, params=params), state)


def failure(ctx, state, action_name, /, **params) -> str:
    with pytest.raises(testing.ActionFailed) as failed:
        run(ctx, state, action_name, **params)
    return failed.value.message


def test_add_rule_loads_and_stores_it(ctx, settled, etc):
    out = run(
        ctx,
        settled,
        "add-rule",
        name="fill",
        **{"from": "caches"},
        to="10.0.1.0/24",
        protocol="tcp",
        port="8000-8080",
    )
    assert ctx.action_results == {
        "added": '{"action": "accept", "from": "caches", "name": "fill", "port": "8000-8080", '
        '"protocol": "tcp", "to": "10.0.1.0/24"}',
        "rules": 2,
    }
    [ruleset] = nft_runs(ctx)
    assert (
        'iifname "net1" oifname @joined ip daddr 10.0.1.0/24 tcp dport 8000-8080 '
        'counter accept comment "fill"' in ruleset
    )
    assert (etc / "ruleset.nft").read_text() == ruleset
    assert peer_data(out)["rules"] == [
        {
            "name": "fill",
            "from": "caches",
            "to": "10.0.1.0/24",
            "protocol": "tcp",
            "port": "8000-8080",
            "action": "accept",
        }
    ]
    # The next dispatch finds it loaded: nothing run again.
    out = ctx.run(ctx.on.update_status(), out)
    assert nft_runs(ctx) == []
    assert out.unit_status.message.endswith("firewall: 2 rules, policy drop")


def test_add_rule_with_osm_s_empty_parameters(ctx, settled):
    out = run(
        ctx,
        settled,
        "add-rule",
        **{"application-name": "cdn-router", "from": "any"},
        name="ping",
        to="any",
        protocol="icmp",
        port="",
    )
    assert peer_data(out)["rules"][0]["port"] is None


def test_add_rule_drop(ctx, settled):
    run(
        ctx,
        settled,
        "add-rule",
        name="no-telnet",
        **{"from": "any"},
        to="any",
        protocol="tcp",
        port="23",
        action="drop",
    )
    [ruleset] = nft_runs(ctx)
    assert 'tcp dport 23 counter drop comment "no-telnet"' in ruleset


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"name": "web"},
            "parameter 'name': option 'rules' has a rule 'web': choose another name",
        ),
        (
            {"to": "origin"},
            "rule 'new': 'to' names network 'origin', which the router is not on (it is on: caches, clients)",
        ),
        ({"protocol": "icmp", "port": "80"}, "parameter 'port': 80 needs protocol tcp or udp, not icmp"),
        ({"protocol": "sctp"}, "parameter 'protocol': Input should be 'tcp', 'udp', 'icmp' or 'any'"),
        ({"port": "0"}, "parameter 'port': 0 is not a port (1-65535)"),
        ({"name": "No_Good"}, "parameter 'name': "),
        ({"from": "10.0.0.0/0"}, "parameter 'from': '10.0.0.0/0' is every address: write 'any'"),
        ({"colour": "red"}, "parameter 'colour': unknown parameter"),
    ],
)
def test_add_rule_refusals_change_nothing(ctx, settled, etc, monkeypatch, params, message):
    monkeypatch.setenv("SCENARIO_SKIP_CONSISTENCY_CHECKS", "1")  # Juju itself refuses 'colour'
    before = (etc / "ruleset.nft").read_text()
    good = {"name": "new", "from": "clients", "to": "caches", "protocol": "tcp", "port": "443"}
    assert message in failure(ctx, settled, "add-rule", **{**good, **params})
    assert nft_runs(ctx) == []
    assert (etc / "ruleset.nft").read_text() == before


def test_add_rule_twice_is_refused(ctx, settled):
    params = {"name": "ping", "from": "any", "to": "any", "protocol": "icmp"}
    out = run(ctx, settled, "add-rule", **params)
    assert failure(ctx, out, "add-rule", **params) == (
        "parameter 'name': rule 'ping' was added before: remove-rule name=ping first"
    )


def test_add_rule_refused_by_nft_is_not_stored(ctx, settled, etc):
    refusing = testing.Exec(["nft"], return_code=1, stderr="Error: Could not process rule")
    container = dataclasses.replace(settled.get_container("router"), execs={refusing})
    state = dataclasses.replace(settled, containers={container})
    message = failure(ctx, state, "add-rule", name="ping", **{"from": "any"}, to="any", protocol="icmp")
    assert message == (
        "nft refused the ruleset (Error: Could not process rule); the previous ruleset stays loaded"
    )
    assert "ping" not in (etc / "ruleset.nft").read_text()


def test_add_rule_without_the_peer_relation_is_refused(ctx, cluster, etc):
    out = settle(ctx, cluster, etc)
    out = dataclasses.replace(out, relations={r for r in out.relations if r.endpoint != "router-peers"})
    message = failure(ctx, out, "add-rule", name="ping", **{"from": "any"}, to="any", protocol="icmp")
    assert message == "the router-peers relation is not set up yet: retry in a moment"


def test_add_rule_on_a_follower_is_refused(ctx, cluster, etc, juju_version):
    out = settle(ctx, cluster, etc, leader=False)
    message = failure(ctx, out, "add-rule", name="ping", **{"from": "any"}, to="any", protocol="icmp")
    assert message.startswith("run this on the leader unit: juju run")


def test_every_unit_shows_its_own_routes(ctx, cluster, etc):
    # Routes and reachability are the unit's own network namespace: no leader needed.
    out = settle(ctx, cluster, etc, leader=False)
    ctx.run(ctx.on.action("show-routes"), out)
    assert "networks" in (ctx.action_results or {})


def test_remove_rule(ctx, settled):
    out = run(ctx, settled, "add-rule", name="ping", **{"from": "any"}, to="any", protocol="icmp")
    nft_runs(ctx)
    out = run(ctx, out, "remove-rule", name="ping")
    assert ctx.action_results == {"removed": "ping", "rules": 1}
    assert peer_data(out)["rules"] == []
    [ruleset] = nft_runs(ctx)
    assert '"ping"' not in ruleset


def test_remove_rule_refusals(ctx, settled):
    assert failure(ctx, settled, "remove-rule", name="web") == (
        "parameter 'name': rule 'web' comes from option 'rules': "
        "change it with juju config cdn-router rules=..."
    )
    assert failure(ctx, settled, "remove-rule", name="nope") == (
        "parameter 'name': no rule 'nope' was added by action (added: none)"
    )
    assert nft_runs(ctx) == []


def test_list_rules_shows_both_origins(ctx, settled):
    out = run(ctx, settled, "add-rule", name="ping", **{"from": "any"}, to="any", protocol="icmp")
    run(ctx, out, "list-rules")
    assert ctx.action_results is not None
    assert json.loads(ctx.action_results["rules"]) == [
        {
            "name": "web",
            "from": "clients",
            "to": "caches",
            "protocol": "tcp",
            "port": "80",
            "action": "accept",
            "origin": "config",
        },
        {
            "name": "ping",
            "from": "any",
            "to": "any",
            "protocol": "icmp",
            "action": "accept",
            "origin": "action",
        },
    ]
    assert ctx.action_results["default-policy"] == "drop"
    assert ctx.action_results["cut-links"] == "[]"


def test_list_rules_with_a_bad_option_fails_naming_it(ctx, settled):
    state = dataclasses.replace(settled, config={**settled.config, "rules": "- 3"})
    assert failure(ctx, state, "list-rules").startswith("option 'rules': rule 1: ")


def test_set_link_down_and_up(ctx, settled, etc):
    out = run(ctx, settled, "set-link", network="caches", state="down")
    assert ctx.action_results == {"network": "caches", "state": "down", "cut-links": '["caches"]'}
    assert peer_data(out)["cut-links"] == ["caches"]
    [ruleset] = nft_runs(ctx)
    assert 'set cut {\n\t\ttype ifname\n\t\telements = { "net1" comment "caches" }' in ruleset
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status.message.endswith("cut: caches")
    out = run(ctx, out, "set-link", network="caches", state="up")
    assert peer_data(out)["cut-links"] == []
    [ruleset] = nft_runs(ctx)
    assert "elements" not in ruleset.split("set cut")[1].split("}")[0]
    # Up again while up: same ruleset, nothing run.
    run(ctx, out, "set-link", network="caches", state="up")
    assert nft_runs(ctx) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"network": "origin", "state": "down"},
            "parameter 'network': network 'origin': the router is not on it (it is on: caches, clients)",
        ),
        ({"network": "caches", "state": "off"}, "parameter 'state': Input should be 'up' or 'down'"),
        ({"network": "Caches!", "state": "down"}, "parameter 'network': "),
    ],
)
def test_set_link_refusals(ctx, settled, params, message):
    assert message in failure(ctx, settled, "set-link", **params)
    assert nft_runs(ctx) == []


def test_show_routes(ctx, cluster, etc, monkeypatch):
    out = settle(ctx, cluster, etc, relations=_routed_networks())
    monkeypatch.setattr(
        charm,
        "kernel_routes",
        lambda: [{"prefix": "10.0.3.0/24", "via": "10.0.2.9", "dev": "net1", "by": "l2sm"}],
    )
    run(ctx, out, "show-routes")
    assert ctx.action_results is not None
    networks = json.loads(ctx.action_results["networks"])
    assert [n["network"] for n in networks] == ["caches", "clients"]
    assert networks[0] == {
        "network": "caches",
        "interface": "net1",
        "address": "10.0.2.1/24",
        "cidr": "10.0.2.0/24",
        "routes": [["10.0.3.0/24", "10.0.2.9"]],
    }
    assert json.loads(ctx.action_results["kernel-routes"])[0]["via"] == "10.0.2.9"


def test_show_routes_reads_the_kernel(ctx, settled):
    run(ctx, settled, "show-routes")  # this host's routes, read for real (no root needed)
    assert ctx.action_results is not None
    assert "kernel-routes" in ctx.action_results or "kernel-routes-error" in ctx.action_results


def test_show_routes_reports_netlink_errors(ctx, settled, monkeypatch):
    def broken():
        raise OSError("netlink: operation not permitted")

    monkeypatch.setattr(charm, "kernel_routes", broken)
    run(ctx, settled, "show-routes")
    assert ctx.action_results is not None
    assert ctx.action_results["kernel-routes-error"] == "netlink: operation not permitted"


def test_check_connectivity(ctx, settled, monkeypatch):
    calls = []
    monkeypatch.setattr(
        charm.probe, "check", lambda target, count: calls.append((target, count)) or {"reached": "true"}
    )
    run(ctx, settled, "check-connectivity", target="10.0.2.10", count=2)
    assert calls == [("10.0.2.10", 2)] and ctx.action_results == {"reached": "true"}


def test_check_connectivity_refuses_a_bad_target(ctx, settled):
    assert failure(ctx, settled, "check-connectivity", target="cache.example").startswith(
        "parameter 'target': "
    )


def _routed_networks():
    from l2sm_knf.l2sm_network import network_relation

    unit = "cdn-router/0"
    return (
        network_relation("clients", "10.0.1.0/24", assignments={unit: "10.0.1.1/24"}),
        network_relation(
            "caches", "10.0.2.0/24", assignments={unit: "10.0.2.1/24"}, routes=[("10.0.3.0/24", "10.0.2.9")]
        ),
    )
