"""The router's day-2 action rules (l2sm_core.cdn.firewall) and show-routes' report
(l2sm_core.cdn.routes), shared by the cdn-router charm and the lab."""

from __future__ import annotations

import json

from l2sm_core.cdn import firewall as fw
from l2sm_core.cdn.routes import membership_entries
from l2sm_core.knf import Membership

WEB = fw.parse_rule({"name": "web", "from": "a", "to": "b", "protocol": "tcp", "port": 80})
PING = fw.parse_rule({"name": "ping", "from": "a", "to": "b", "protocol": "icmp"})


def test_add_rule_refuses_a_name_the_option_or_an_earlier_action_took():
    assert "option 'rules' has a rule 'web'" in str(fw.add_rule_refusal("web", [WEB], []))
    assert "remove-rule name=ping first" in str(fw.add_rule_refusal("ping", [WEB], [PING]))
    assert fw.add_rule_refusal("new", [WEB], [PING]) is None


def test_remove_rule_refuses_config_rules_and_names_no_action_added():
    assert "juju config cdn-router rules=" in str(fw.remove_rule_refusal("web", [WEB], [], "cdn-router"))
    assert "(added: ping)" in str(fw.remove_rule_refusal("x", [WEB], [PING], "cdn-router"))
    assert "(added: none)" in str(fw.remove_rule_refusal("x", [], [], "cdn-router"))
    assert fw.remove_rule_refusal("ping", [WEB], [PING], "cdn-router") is None


def test_rules_are_listed_as_written_and_read_back():
    entry = fw.rule_entry(WEB, "config")
    assert entry == {
        "name": "web",
        "from": "a",
        "to": "b",
        "protocol": "tcp",
        "port": "80",
        "action": "accept",
        "origin": "config",
    }
    assert fw.parse_rule(json.loads(fw.rule_text(WEB))) == WEB


def test_cut_after_adds_and_removes_one_network():
    assert fw.cut_after(["b"], "a", "down") == ["a", "b"]
    assert fw.cut_after(["a", "b"], "a", "up") == ["b"]
    assert fw.cut_after([], "a", "up") == []


def test_membership_entries_as_show_routes_lists_them():
    m = Membership(
        network="n",
        interface="net1",
        address="10.0.1.1/24",
        cidr="10.0.1.0/24",
        routes=(("10.0.2.0/24", "10.0.1.2"),),
    )
    assert membership_entries([m]) == [
        {
            "network": "n",
            "interface": "net1",
            "address": "10.0.1.1/24",
            "cidr": "10.0.1.0/24",
            "routes": [["10.0.2.0/24", "10.0.1.2"]],
        }
    ]
