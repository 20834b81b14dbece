"""cdn-router's firewall: the `rules` option read with errors that name the rule and field,
action rules merged, unknown networks refused, and the rendered ruleset checked by `nft -c`,
loaded in a namespace of the test's own, and tried on traffic across a router between a client
and a server namespace (a port let through, another dropped, a link cut and restored).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from ipaddress import IPv4Network
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2sm_core.cdn.firewall import (
    RULES_MAX,
    Firewall,
    PortRange,
    RouterNetwork,
    Rule,
    build_firewall,
    endpoint,
    interface_name,
    merge_rules,
    parse_rule,
    parse_rules,
)
from l2sm_core.cdn.render import render_ruleset
from l2sm_testing.bad_input import tricky_text
from l2sm_testing.netns import in_netns

NFT = shutil.which("nft") or "/usr/sbin/nft"
needs_nft = pytest.mark.skipif(
    not os.access(NFT, os.X_OK), reason=f"{NFT} is missing: `make sysdeps` installs the pinned nftables"
)
needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="loading rulesets needs root (network namespaces) and iproute2's `ip`",
)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NETWORKS = (
    RouterNetwork(name="clients", interface="net1", prefix=IPv4Network("10.0.1.0/24")),
    RouterNetwork(name="caches", interface="net2", prefix=IPv4Network("10.0.2.0/24")),
    RouterNetwork(name="origin", interface="net3"),
)
RULES = """
- name: web
  from: clients
  to: caches
  protocol: tcp
  port: 80
- {name: fill, from: caches, to: origin, protocol: tcp, port: 8000-8080}
- {name: dns, from: any, to: 10.0.3.53, protocol: udp, port: "53"}
- {name: ping, from: 10.0.1.0/24, to: any, protocol: icmp}
- {name: no-telnet, from: any, to: any, protocol: tcp, port: 23, action: drop}
- {name: caches-any, from: caches, to: clients}
"""


# --- helpers ------------------------------------------------------------------------------------


def statements(ruleset: str) -> list[tuple[int, str, int]]:
    """(depth, first word, words) of every statement, read as nft reads them: `#` comments, quoted
    strings, a newline or `;` ends a statement, braces nest. Two rulesets with the same list
    differ only in values."""
    found: list[tuple[int, str, int]] = []
    depth, words, word, quoted, i = 0, [], "", False, 0
    while i < len(ruleset):
        char = ruleset[i]
        if quoted:
            word += char
            quoted = char != '"'
        elif char == '"':
            word += char
            quoted = True
        elif char == "#":
            while i + 1 < len(ruleset) and ruleset[i + 1] != "\n":
                i += 1
        elif char in " \t\n;{}":
            if word:
                words.append(word)
                word = ""
            if char in "\n;{}" and words:
                # A quoted string is a value, wherever it stands (set elements start with one).
                found.append((depth, '""' if words[0].startswith('"') else words[0], len(words)))
                words = []
            depth += {"{": 1, "}": -1}.get(char, 0)
        else:
            word += char
        i += 1
    assert depth == 0 and not quoted, "unbalanced braces or quotes"
    return found


def nft_check(ruleset: str) -> None:
    """`nft -c -f`: the kernel checks the batch and commits nothing. Run in a fresh network
    namespace when we may make one, so even a mistake here cannot touch the host's tables."""
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as file:
        file.write(ruleset)
    try:
        argv = [NFT, "-c", "-f", file.name]
        if os.geteuid() == 0 and shutil.which("unshare"):
            argv = ["unshare", "-n", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(file.name)
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN: run the tests as root")
    assert result.returncode == 0, f"nft -c refused:\n{result.stderr}\n{ruleset}"


def firewall(**changes: Any) -> Firewall:
    fields: dict[str, Any] = {"networks": NETWORKS, "rules": parse_rules(RULES)}
    return Firewall(**{**fields, **changes})


# --- reading the option -------------------------------------------------------------------------


def test_rules_read_with_defaults_and_normalised_endpoints():
    rules = parse_rules(RULES)
    assert [rule.name for rule in rules] == ["web", "fill", "dns", "ping", "no-telnet", "caches-any"]
    web, fill, dns, ping, telnet, caches_any = rules
    assert (web.source, web.destination, web.protocol, web.port, web.action) == (
        "clients",
        "caches",
        "tcp",
        PortRange(80, 80),
        "accept",
    )
    assert str(fill.port) == "8000-8080"
    assert dns.destination == "10.0.3.53/32" and str(dns.port) == "53"
    assert ping.port is None and ping.source == "10.0.1.0/24"
    assert telnet.action == "drop"
    assert caches_any.protocol == "any"


@pytest.mark.parametrize("text", ["", "  \n", "# no rules yet\n", "[]", "~"])
def test_empty_option_is_no_rules(text):
    assert parse_rules(text) == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- {name: web, from: clients, to: caches, protocol: tcp, port: 70000}",
            r"rule 1 \('web'\): field 'port'",
        ),
        ("- {name: web, from: clients, to: caches, protocol: sctp}", "field 'protocol'"),
        ("- {name: web, from: a, to: b, protocol: icmp, port: 8}", "needs protocol tcp or udp, not icmp"),
        ("- {name: web, from: a, to: b, port: 8}", "needs protocol tcp or udp, not any"),
        ("- {name: Web, from: a, to: b}", "field 'name': 'Web' is not a DNS-1123 label"),
        ("- {name: " + "a" * 64 + ", from: a, to: b}", "at most 63"),
        ("- {name: web, from: a}", "field 'to': Field required"),
        ("- {from: a, to: b}", r"rule 1: field 'name'"),
        ("- {name: web, from: a, to: b, colour: red}", "field 'colour': unknown field"),
        ("- {name: 12, from: a, to: b}", "YAML read a int"),
        ("- {name: web, from: no, to: b}", "field 'from': False is not text"),
        (
            "- {name: a, from: x, to: y}\n- {name: b, from: x, to: y}\n- {name: a, from: x, to: y}",
            "rule 3.*rule 1's",
        ),
        ("- {name: a, from: 10.0.1.1/24, to: b}", "did you mean 10.0.1.0/24"),
        ("- {name: a, from: 0.0.0.0/0, to: b}", "write 'any'"),
        ("- {name: a, from: 127.0.0.0/8, to: b}", "loopback"),
        ("- {name: a, from: 10.0.1.300, to: b}", "not an IPv4 address"),
        ("- {name: a, from: 'net a', to: b}", "not a network name"),
        ("- {name: a, from: x, to: y, protocol: tcp, port: 90-80}", "write 80-90"),
        ("- {name: a, from: x, to: y, protocol: tcp, port: 0}", "not a port"),
        ("- {name: a, from: x, to: y, protocol: tcp, port: [1]}", "not a port or range"),
        ("- {name: a, from: x, to: y, protocol: tcp, port: true}", "not a port or range"),
        ("- {name: a, from: x, to: y, action: reject}", "field 'action'"),
        ("name: web", "must be a YAML list of rules"),
        ("- just-a-name", "rule 1: 'just-a-name' is not a mapping"),
        ("- {name: a", r"not YAML \(line 1"),
        ("\t- x", "not YAML"),
        ("- !!python/object/apply:os.system [id]", "not YAML"),
        ("[" * 30000, "nested too deeply|not YAML"),
        ("x" * 70000, "at most 65536"),
        ("- {name: a, from: x, to: y}\n" * (RULES_MAX + 1), f"at most {RULES_MAX}"),
    ],
    ids=lambda value: value[:40],
)
def test_option_errors_name_the_rule_and_field(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        parse_rules(text)
    assert str(caught.value).startswith("rules: ")
    assert "\n" not in str(caught.value)


def test_option_name_is_the_callers():
    with pytest.raises(ValueError, match=r"^firewall-rules: rule 1"):
        parse_rules("- {name: a}", option="firewall-rules")
    with pytest.raises(ValueError, match="must be YAML text"):
        parse_rules(None)  # type: ignore[arg-type]


def test_an_action_rule_is_read_from_its_parameters():
    rule = parse_rule({"name": "block-x", "from": "any", "to": "caches", "protocol": "tcp", "port": 8080})
    assert (rule.name, str(rule.port)) == ("block-x", "8080")
    with pytest.raises(ValueError, match="field 'to'"):
        parse_rule({"name": "block-x", "from": "any"})
    with pytest.raises(ValueError, match="not a mapping"):
        parse_rule(["name", "x"])  # type: ignore[arg-type]


def test_a_stored_rule_reads_back():
    for rule in parse_rules(RULES):
        data = rule.model_dump(mode="json", by_alias=True)
        assert parse_rule(data) == rule
    assert Rule(name="py", source="any", destination="caches") == parse_rule(
        {"name": "py", "from": "any", "to": "caches"}
    )


def test_port_ranges():
    assert PortRange.parse("8000-8080") == PortRange(8000, 8080)
    assert PortRange.parse(PortRange(1, 2)) == PortRange(1, 2)
    assert str(PortRange(443, 443)) == "443"
    with pytest.raises(ValueError, match="not a port"):
        PortRange(1, 65536)
    with pytest.raises(ValueError, match="not a port"):
        PortRange(True, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("any", "any"), ("caches", "caches"), ("10.0.0.0/8", "10.0.0.0/8"), ("10.0.2.5", "10.0.2.5/32")],
)
def test_endpoints(value, expected):
    assert endpoint(value) == expected


@pytest.mark.parametrize("value", ["", None, "ANY", "eth0:1", "10.0.0.0/33", "2001:db8::/32", "net_a"])
def test_bad_endpoints(value):
    with pytest.raises(ValueError):
        endpoint(value)


@pytest.mark.parametrize("value", ["", "a" * 16, "eth 1", 'eth"', "eth*", "-eth", "eth/1", None])
def test_interface_names_are_linux_s_and_nothing_nft_reads_as_syntax(value):
    with pytest.raises(ValueError, match="not an interface name"):
        interface_name(value)


# --- merging and resolving ----------------------------------------------------------------------


def test_action_rules_follow_the_option_s():
    config = parse_rules(RULES)
    added = (parse_rule({"name": "block", "from": "any", "to": "any", "action": "drop"}),)
    assert [rule.name for rule in merge_rules(config, added)][-2:] == ["caches-any", "block"]


def test_an_action_rule_may_not_take_an_option_rule_s_name():
    config = parse_rules(RULES)
    taken = (parse_rule({"name": "web", "from": "any", "to": "any"}),)
    with pytest.raises(ValueError, match="action rule 'web': the 'rules' option has a rule of that name"):
        merge_rules(config, taken)


def test_action_rules_are_unique_and_bounded():
    rule = parse_rule({"name": "a", "from": "any", "to": "any"})
    with pytest.raises(ValueError, match="action rule 'a' is given twice"):
        merge_rules((), (rule, rule))
    many = [parse_rule({"name": f"r{i}", "from": "any", "to": "any"}) for i in range(RULES_MAX + 1)]
    with pytest.raises(ValueError, match=f"at most {RULES_MAX}"):
        merge_rules(many[:100], many[100:])


def test_a_rule_naming_a_network_the_router_is_not_on_is_refused():
    rules = parse_rules("- {name: to-video, from: clients, to: video}")
    with pytest.raises(ValueError) as caught:
        build_firewall(NETWORKS, rules)
    message = str(caught.value)
    assert message == (
        "rule 'to-video': 'to' names network 'video', which the router is not on "
        "(it is on: clients, caches, origin)"
    )


def test_before_any_network_joined_rules_naming_one_wait():
    with pytest.raises(ValueError, match="it is on no network yet"):
        build_firewall((), parse_rules("- {name: web, from: clients, to: any}"))
    # Rules without names of networks are fine: they match nothing yet.
    assert render_ruleset(build_firewall((), parse_rules("- {name: web, from: any, to: 10.0.2.0/24}")))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"default_policy": "reject"}, "option 'default-policy'"),
        ({"cut_links": ["video"]}, "cut link 'video': the router is not on that network"),
        (
            {"networks": [*NETWORKS, {"name": "clients", "interface": "net9"}]},
            "network 'clients' is given twice",
        ),
        ({"networks": [*NETWORKS, {"name": "more", "interface": "net1"}]}, "interface 'net1' is given twice"),
        ({"networks": [{"name": "Bad", "interface": "net1"}]}, "option 'networks.0.name'"),
        ({"networks": [{"name": f"n{i}", "interface": f"e{i}"} for i in range(65)]}, "at most 64"),
    ],
)
def test_firewall_refusals_are_one_line(changes, message):
    fields: dict[str, Any] = {"networks": NETWORKS, "rules": (), "default_policy": "drop", "cut_links": ()}
    with pytest.raises(ValueError, match=message) as caught:
        build_firewall(**{**fields, **changes})
    assert "\n" not in str(caught.value)


def test_the_model_refuses_duplicate_and_too_many_rules_itself():
    rule = parse_rule({"name": "a", "from": "any", "to": "any"})
    with pytest.raises(pydantic.ValidationError, match="rule 'a' is given twice"):
        Firewall(rules=(rule, rule))
    many = tuple(parse_rule({"name": f"r{i}", "from": "any", "to": "any"}) for i in range(RULES_MAX + 1))
    with pytest.raises(pydantic.ValidationError, match=f"at most {RULES_MAX}"):
        Firewall(rules=many)


def test_set_link_cuts_and_restores_one_network():
    fw = firewall()
    down = fw.with_link("caches", "down")
    assert down.cut_links == {"caches"} and fw.cut_links == frozenset()
    assert down.with_link("caches", "down").cut_links == {"caches"}
    assert down.with_link("caches", "up").cut_links == frozenset()
    with pytest.raises(ValueError, match=r"network 'video': the router is not on it \(it is on: clients"):
        fw.with_link("video", "down")
    with pytest.raises(ValueError, match="use up or down"):
        fw.with_link("caches", "off")  # type: ignore[arg-type]


# --- the rendered ruleset -----------------------------------------------------------------------


def test_ruleset_replaces_its_table_in_one_transaction():
    text = render_ruleset(firewall())
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[:3] == ["table inet cdn_router", "delete table inet cdn_router", "table inet cdn_router {"]
    assert text.endswith("}\n")


def test_ruleset_rules_in_order_after_cuts_and_conntrack():
    text = render_ruleset(firewall(cut_links={"origin"}))
    forward = text[text.index("chain forward") : text.index("chain input")]
    expected = [
        "type filter hook forward priority filter; policy drop;",
        'iifname @cut counter drop comment "cut link"',
        'oifname @cut counter drop comment "cut link"',
        'ct state invalid counter drop comment "invalid"',
        "ct state established,related accept",
        'iifname "net1" oifname "net2" tcp dport 80 counter accept comment "web"',
        'iifname "net2" oifname "net3" tcp dport 8000-8080 counter accept comment "fill"',
        'iifname @joined oifname @joined ip daddr 10.0.3.53/32 udp dport 53 counter accept comment "dns"',
        "iifname @joined oifname @joined ip saddr 10.0.1.0/24 meta l4proto { icmp, ipv6-icmp } "
        'counter accept comment "ping"',
        'iifname @joined oifname @joined tcp dport 23 counter drop comment "no-telnet"',
        'iifname "net2" oifname "net1" counter accept comment "caches-any"',
    ]
    assert [line.strip() for line in forward.splitlines()[1:] if line.strip() not in ("", "}")] == expected
    assert 'elements = { "net3" comment "origin" }' in text
    assert 'elements = { "net1" comment "clients", "net2" comment "caches", "net3" comment "origin" }' in text


def test_any_is_the_keyword_even_beside_a_network_called_any():
    networks = (*NETWORKS, RouterNetwork(name="any", interface="net9"))
    rules = parse_rules("- {name: all, from: any, to: caches}")
    text = render_ruleset(build_firewall(networks, rules, cut_links=["any"]))
    assert 'iifname @joined oifname "net2" counter accept comment "all"' in text
    assert 'elements = { "net9" comment "any" }' in text


def test_protocol_without_port():
    rules = parse_rules(
        "- {name: t, from: clients, to: caches, protocol: tcp}\n"
        "- {name: u, from: any, to: any, protocol: udp}"
    )
    text = render_ruleset(firewall(rules=rules))
    assert 'iifname "net1" oifname "net2" meta l4proto tcp counter accept comment "t"' in text
    assert 'iifname @joined oifname @joined meta l4proto udp counter accept comment "u"' in text


@needs_nft
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"default_policy": "accept"},
        {"rules": ()},
        {"rules": (), "networks": ()},
        {"cut_links": {"clients", "origin"}},
        {"default_policy": "accept", "cut_links": {"caches"}, "rules": ()},
    ],
    ids=["drop", "accept", "no-rules", "no-networks", "cut-two", "accept-cut-no-rules"],
)
def test_rulesets_pass_nft_check(changes):
    nft_check(render_ruleset(firewall(**changes)))


@needs_nft
def test_the_most_rules_pass_nft_check():
    rules = tuple(
        parse_rule({"name": f"r{i}", "from": "clients", "to": "caches", "protocol": "tcp", "port": 1000 + i})
        for i in range(RULES_MAX)
    )
    nft_check(render_ruleset(firewall(rules=rules)))


@needs_nft
def test_nft_check_would_catch_a_broken_ruleset():
    broken = render_ruleset(firewall()).replace("policy drop;", "policy maybe;")
    with pytest.raises(AssertionError, match="nft -c refused"):
        nft_check(broken)


# --- no value adds a statement ------------------------------------------------------------------

_NEAR_MISS = st.text(alphabet=st.sampled_from(list('ab1-./;{}#" \n\t\\*@')), max_size=20)
_PLAIN = st.text(alphabet=st.sampled_from(list("ab1-.")), min_size=1, max_size=12)
SUSPECT = st.one_of(tricky_text(["net-a", "eth1", "10.0.1.0/24", "80"]), _NEAR_MISS, _PLAIN)


def _ruleset_with(field: str, value: str) -> str:
    network = {"name": "net-a", "interface": "eth1"}
    rule = {"name": "web", "from": "net-a", "to": "10.0.2.0/24", "protocol": "tcp", "port": "80"}
    if field == "network":
        network["name"] = rule["from"] = value
    elif field == "interface":
        network["interface"] = value
    else:
        rule[field] = value
    # Validated where the charm validates it: the option's YAML reader, then the firewall.
    return render_ruleset(build_firewall([network], [parse_rule(rule)], cut_links=[network["name"]]))


@needs_nft
@pytest.mark.parametrize("field", ["network", "interface", "name", "from", "to", "port"])
@PROPERTY
@given(value=SUSPECT)
def test_no_text_adds_a_statement_and_nft_accepts_what_is_accepted(field, value):
    try:
        ruleset = _ruleset_with(field, value)
    except ValueError:
        return
    # Compared with a value of the same kind: a CIDR end adds `ip saddr`, a network's does not.
    kind = endpoint(value) if field in ("from", "to") else ""
    like = "any" if kind == "any" else "10.0.9.0/24" if "/" in kind else "net-a" if kind else "web"
    baseline = _ruleset_with(field if kind else "name", like)
    assert statements(ruleset) == statements(baseline)
    nft_check(ruleset)


@PROPERTY
@given(text=st.one_of(st.text(max_size=200), tricky_text(), st.sampled_from([RULES, "- " * 400 + "x"])))
def test_any_option_text_is_refused_or_rules(text):
    try:
        rules = parse_rules(text)
    except ValueError:
        return
    assert all(isinstance(rule, Rule) for rule in rules)


# --- loaded, for real, in namespaces of the test's own -------------------------------------------


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def nft_in(ns: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, NFT, *args], input=stdin, capture_output=True, text=True, timeout=30
    )


def load(ns: str, ruleset: str) -> None:
    result = nft_in(ns, "-f", "-", stdin=ruleset)
    assert result.returncode == 0, result.stderr


def listed(ns: str) -> str:
    result = nft_in(ns, "list", "table", "inet", "cdn_router")
    assert result.returncode == 0, result.stderr
    return result.stdout


@contextlib.contextmanager
def namespaces(*names: str) -> Iterator[None]:
    made: list[str] = []
    try:
        for ns in names:
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        yield
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


TAG = f"fw{os.getpid() % 100000}"


@needs_nft
@needs_netns
def test_loaded_ruleset_is_listed_and_replaced_whole():
    ns = f"{TAG}-load"
    with namespaces(ns):
        load(ns, render_ruleset(firewall(cut_links={"origin"})))
        shown = listed(ns)
        assert 'comment "web"' in shown and 'comment "caches-any"' in shown
        assert "policy drop;" in shown and 'elements = { "net3" comment "origin" }' in shown

        # Applied again with other rules: the old ones are gone, nothing is doubled.
        load(ns, render_ruleset(firewall(rules=parse_rules("- {name: only, from: any, to: any}"))))
        again = listed(ns)
        assert 'comment "only"' in again and 'comment "web"' not in again
        assert again.count("chain forward") == 1

        # A file nft refuses changes nothing: the transaction is all or nothing.
        broken = render_ruleset(firewall()) + "add rule inet cdn_router forward bogus\n"
        assert nft_in(ns, "-f", "-", stdin=broken).returncode != 0
        assert listed(ns) == again


@pytest.fixture
def routed() -> Iterator[dict[str, str]]:
    """client 10.0.1.10 -- net1 10.0.1.1 router 10.0.2.1 net2 -- 10.0.2.10 server."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("the forward test needs root (network namespaces) and iproute2's `ip`")
    names = {role: f"{TAG}-{role[0]}" for role in ("client", "router", "server")}
    with namespaces(*names.values()):
        client, router, server = names["client"], names["router"], names["server"]
        # Made inside the namespaces, so the names cannot clash with the host's.
        ip("-n", client, "link", "add", "c0", "type", "veth", "peer", "name", "net1", "netns", router)
        ip("-n", router, "link", "add", "net2", "type", "veth", "peer", "name", "s0", "netns", server)
        for ns, dev, address in (
            (client, "c0", "10.0.1.10/24"),
            (router, "net1", "10.0.1.1/24"),
            (router, "net2", "10.0.2.1/24"),
            (server, "s0", "10.0.2.10/24"),
        ):
            ip("-n", ns, "addr", "add", address, "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        ip("-n", client, "route", "add", "default", "via", "10.0.1.1")
        ip("-n", server, "route", "add", "default", "via", "10.0.2.1")
        subprocess.run(
            ["ip", "netns", "exec", router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
            check=True,
            capture_output=True,
        )
        yield names


def _listener(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("10.0.2.10", port))
    sock.listen(8)
    return sock


def _serve(sock: socket.socket) -> None:
    """Echo each connection's bytes back until the test closes the listener."""

    def echo(conn: socket.socket) -> None:
        conn.settimeout(5)  # a connection whose link was cut may never see its FIN
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(64):
                conn.sendall(data)

    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def reaches(client_ns: str, port: int) -> bool:
    def attempt() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            try:
                sock.connect(("10.0.2.10", port))
                sock.sendall(b"hi")
                return sock.recv(2) == b"hi"
            except OSError:  # a timeout: the SYN (or its answer) was dropped
                return False

    return in_netns(client_ns, attempt)


@needs_nft
@needs_netns
def test_forwarded_traffic_follows_the_rules_and_cut_links(routed):
    client, router, server = routed["client"], routed["router"], routed["server"]
    networks = (
        RouterNetwork(name="clients", interface="net1", prefix=IPv4Network("10.0.1.0/24")),
        RouterNetwork(name="servers", interface="net2", prefix=IPv4Network("10.0.2.0/24")),
    )
    listeners = [in_netns(server, lambda port=port: _listener(port)) for port in (80, 8080)]
    for sock in listeners:
        threading.Thread(target=_serve, args=(sock,), daemon=True).start()
    try:
        assert reaches(client, 80) and reaches(client, 8080)  # no ruleset yet

        web = parse_rules("- {name: web, from: clients, to: servers, protocol: tcp, port: 80}")
        fw = build_firewall(networks, web, default_policy="drop")
        load(router, render_ruleset(fw))
        assert reaches(client, 80)
        assert not reaches(client, 8080)  # not allowed: the policy drops it

        # An established connection, then the link is cut: it carries nothing more.
        open_conn = in_netns(client, lambda: socket.create_connection(("10.0.2.10", 80), timeout=2))
        with open_conn:
            open_conn.sendall(b"a1")
            assert open_conn.recv(2) == b"a1"
            load(router, render_ruleset(fw.with_link("servers", "down")))
            assert not reaches(client, 80)
            open_conn.settimeout(0.5)
            open_conn.sendall(b"a2")
            with pytest.raises(TimeoutError):
                open_conn.recv(2)
        load(router, render_ruleset(fw.with_link("servers", "down").with_link("servers", "up")))
        assert reaches(client, 80)

        # default-policy accept with a drop rule: everything but that port passes.
        no_alt = parse_rules(
            "- {name: no-alt, from: any, to: 10.0.2.10, protocol: tcp, port: 8080, action: drop}"
        )
        load(router, render_ruleset(build_firewall(networks, no_alt, default_policy="accept")))
        assert reaches(client, 80)
        assert not reaches(client, 8080)
        dropping = next(line for line in listed(router).splitlines() if 'comment "no-alt"' in line)
        assert "counter packets 0 " not in dropping  # the drops were counted
    finally:
        for sock in listeners:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone would not)
            sock.close()
