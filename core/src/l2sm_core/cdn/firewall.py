"""cdn-router's firewall as data: the networks it joined, the rules between them, the links cut.

`parse_rules` reads the `rules` option (a YAML list), `merge_rules` adds the rules actions
added, `Firewall` checks that every name a rule or a cut link uses is a network the router is
on, and `l2sm_core.cdn.render.render_ruleset` turns it into one nftables file.

Rules are matched in order, first match wins, on forwarded traffic only: `from`/`to` a network
match the interface it arrived on / leaves by; a CIDR or `any` matches any of the router's
networks (never its cluster interface) with that source / destination address. Established and
related traffic is always let through, invalid traffic always dropped. A cut link drops all of
its network's IP traffic, forwarded or to and from the router itself, established or not.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import pydantic
import yaml

from l2sm_core.validation import (
    clip,
    describe_validation_error,
    dns1123_label,
    route_prefix,
    shown,
    unicast_ipv4,
)

RULES_MAX = 256
NETWORKS_MAX = 64
RULES_TEXT_MAX = 64 * 1024  # characters of the `rules` option
ANY = "any"
RULES_OPTION = "rules"
# Linux interface names: at most 15 bytes, no '/', ':', whitespace; nothing nft reads as a
# wildcard ('*') or string syntax ('"', '\\').
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
_PORTS = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")


def interface_name(value: str) -> str:
    if not isinstance(value, str) or not _IFNAME.fullmatch(value):
        raise ValueError(
            f"{shown(value)} is not an interface name: 1-15 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


def endpoint(value: str) -> str:
    """`any`, a network name, or an IPv4 CIDR (a bare address is its /32), normalised."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a network name, an IPv4 CIDR (a.b.c.d/len) or 'any'")
    if value == ANY:
        return value
    if "/" in value:
        if value.endswith("/0"):
            raise ValueError(f"{shown(value)} is every address: write 'any'")
        return str(route_prefix(value))
    if value[0].isdigit() and "." in value:
        return f"{unicast_ipv4(value)}/32"
    try:
        return dns1123_label(value)
    except ValueError as exc:
        raise ValueError(
            f"{shown(value)} is not a network name (a DNS-1123 label), an IPv4 CIDR or 'any': {exc}"
        ) from None


def is_network(value: str) -> bool:
    """Whether an endpoint (as `endpoint` returns it) names a network."""
    return value != ANY and "/" not in value


@dataclass(frozen=True)
class PortRange:
    """One port (first == last) or an inclusive range, as `80` or `8000-8080`."""

    first: int
    last: int

    def __post_init__(self) -> None:
        for port in (self.first, self.last):
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise ValueError(f"{shown(port)} is not a port (1-65535)")
        if self.first > self.last:
            raise ValueError(f"{self.first}-{self.last} runs backwards: write {self.last}-{self.first}")

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    @classmethod
    def parse(cls, value: object) -> PortRange:
        if isinstance(value, PortRange):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value, value)
        match = _PORTS.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise ValueError(f"{shown(value)} is not a port or range (e.g. 80 or 8000-8080)")
        first = int(match[1])
        return cls(first, int(match[2]) if match[2] else first)


def _text(value: object) -> str:
    if not isinstance(value, str):
        # YAML reads `name: 123` or `from: no` as a number or a boolean.
        raise ValueError(f"{shown(value)} is not text (YAML read a {type(value).__name__}): quote it")
    return value


def _name(value: object) -> str:
    return dns1123_label(_text(value))


def _endpoint(value: object) -> str:
    return endpoint(_text(value))


RuleName = Annotated[str, pydantic.BeforeValidator(_name)]
Endpoint = Annotated[str, pydantic.BeforeValidator(_endpoint)]
# Stored as written (80, "8000-8080"), so a dumped rule reads back.
Ports = Annotated[PortRange, pydantic.BeforeValidator(PortRange.parse), pydantic.PlainSerializer(str)]


class Rule(pydantic.BaseModel):
    """One rule, as written in the option: name, from, to, protocol, port, action."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    name: RuleName
    # Written `from`/`to` (Python keywords, hence the field names); dumped by_alias the same.
    source: Endpoint = pydantic.Field(
        validation_alias=pydantic.AliasChoices("from", "source"), serialization_alias="from"
    )
    destination: Endpoint = pydantic.Field(
        validation_alias=pydantic.AliasChoices("to", "destination"), serialization_alias="to"
    )
    protocol: Literal["tcp", "udp", "icmp", "any"] = "any"
    port: Ports | None = None
    # accept: the usual rule under `default-policy: drop`; drop: for `default-policy: accept`.
    action: Literal["accept", "drop"] = "accept"

    @pydantic.model_validator(mode="after")
    def _port_needs_transport(self):
        if self.port is not None and self.protocol not in ("tcp", "udp"):
            raise ValueError(f"port {self.port} needs protocol tcp or udp, not {self.protocol}")
        return self

    def networks(self) -> list[tuple[str, str]]:
        """(field, network name) for each end naming a network."""
        ends = (("from", self.source), ("to", self.destination))
        return [(field, value) for field, value in ends if is_network(value)]


class RouterNetwork(pydantic.BaseModel):
    """A network the router joined: its name, the interface it arrived on, its prefix (for
    messages only: rules match the interface, which no packet can fake)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, pydantic.AfterValidator(dns1123_label)]
    interface: Annotated[str, pydantic.AfterValidator(interface_name)]
    prefix: ipaddress.IPv4Network | None = None


class Firewall(pydantic.BaseModel):
    """Everything the router's ruleset is made of; refuses names of networks it is not on."""

    TABLE: ClassVar[str] = "cdn_router"

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    networks: tuple[RouterNetwork, ...] = ()
    rules: tuple[Rule, ...] = ()
    default_policy: Literal["drop", "accept"] = "drop"
    cut_links: frozenset[str] = frozenset()

    @pydantic.model_validator(mode="after")
    def _names(self):
        if len(self.networks) > NETWORKS_MAX:
            raise ValueError(f"{len(self.networks)} networks: the router takes at most {NETWORKS_MAX}")
        _unique("network", [n.name for n in self.networks])
        _unique("interface", [n.interface for n in self.networks])
        _check_count(self.rules)
        _unique("rule", [rule.name for rule in self.rules])
        known = self.network_names()
        for rule in self.rules:
            for field, network in rule.networks():
                if network not in known:
                    raise ValueError(
                        f"rule {rule.name!r}: '{field}' names network {network!r}, "
                        f"which the router is not on {_on(known)}"
                    )
        for network in sorted(self.cut_links):
            if network not in known:
                raise ValueError(f"cut link {shown(network)}: the router is not on that network {_on(known)}")
        return self

    def network_names(self) -> list[str]:
        return [network.name for network in self.networks]

    def with_link(self, network: str, state: Literal["up", "down"]) -> Firewall:
        """The day-2 `set-link network=<name> state=down|up`: cut or restore one network."""
        if state not in ("up", "down"):
            raise ValueError(f"state {shown(state)}: use up or down")
        if network not in self.network_names():
            raise ValueError(f"network {shown(network)}: the router is not on it {_on(self.network_names())}")
        cut = self.cut_links - {network} if state == "up" else self.cut_links | {network}
        return self.model_copy(update={"cut_links": frozenset(cut)})


def _on(known: list[str]) -> str:
    return f"(it is on: {clip(', '.join(known), 400)})" if known else "(it is on no network yet)"


def build_firewall(
    networks: Iterable[RouterNetwork | Mapping[str, Any]],
    rules: Iterable[Rule] = (),
    default_policy: str = "drop",
    cut_links: Iterable[str] = (),
) -> Firewall:
    """Firewall(...), with any refusal as one ValueError line naming the option or rule, for a
    status or an action's failure message."""
    try:
        return Firewall(
            networks=tuple(networks),  # type: ignore[arg-type]  # mappings are validated
            rules=tuple(rules),
            default_policy=default_policy,  # type: ignore[arg-type]  # validated as a Literal
            cut_links=frozenset(cut_links),
        )
    except pydantic.ValidationError as exc:
        raise ValueError(describe_validation_error(exc, kind="option")) from None


def _unique(kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{kind} {name!r} is given twice: names must be unique")
        seen.add(name)


def _check_count(rules: tuple[Rule, ...] | list[Rule]) -> None:
    if len(rules) > RULES_MAX:
        raise ValueError(f"{len(rules)} rules: at most {RULES_MAX}")


def parse_rule(data: Mapping[str, Any]) -> Rule:
    """One rule from a mapping (an action's parameters, or one entry of the option)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{shown(data)} is not a mapping of name, from, to, protocol, port")
    try:
        return Rule.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        raise ValueError(describe_validation_error(exc, kind="field")) from None


def parse_rules(text: str, option: str = RULES_OPTION) -> tuple[Rule, ...]:
    """The `rules` option: a YAML list of mappings, `- {name: web, from: clients, to: caches,
    protocol: tcp, port: 80}`. Empty text is no rules. Errors name the rule (number from 1, and
    its name when it has one) and the field."""
    if not isinstance(text, str):
        raise ValueError(f"{option}: must be YAML text, got {shown(text)}")
    if len(text) > RULES_TEXT_MAX:
        raise ValueError(f"{option}: is {len(text)} characters long: at most {RULES_TEXT_MAX}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise ValueError(f"{option}: is not YAML{where}: {problem}") from None
    except RecursionError:  # deeply nested brackets
        raise ValueError(f"{option}: is nested too deeply to be a list of rules") from None
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ValueError(
            f"{option}: must be a YAML list of rules (- name: ..., from: ..., to: ...), "
            f"got {type(data).__name__} {shown(data)}"
        )
    if len(data) > RULES_MAX:
        raise ValueError(f"{option}: {len(data)} rules: at most {RULES_MAX}")
    rules: list[Rule] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(data, start=1):
        label = f"{option}: rule {index}"
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            label += f" ({shown(item['name'])})"
        try:
            rule = parse_rule(item)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
        if rule.name in first_index:
            raise ValueError(f"{label}: name {rule.name!r} is rule {first_index[rule.name]}'s too")
        first_index[rule.name] = index
        rules.append(rule)
    return tuple(rules)


def merge_rules(
    config_rules: Iterable[Rule], action_rules: Iterable[Rule], option: str = RULES_OPTION
) -> tuple[Rule, ...]:
    """The option's rules, then those actions added (in the order added): an action's rule may
    not take a name the option uses, nor one another action rule has."""
    config_rules, action_rules = tuple(config_rules), tuple(action_rules)
    taken = {rule.name for rule in config_rules}
    _unique("rule", [rule.name for rule in config_rules])
    _unique("action rule", [rule.name for rule in action_rules])
    for rule in action_rules:
        if rule.name in taken:
            raise ValueError(
                f"action rule {rule.name!r}: the {option!r} option has a rule of that name; "
                "remove one or rename the action's"
            )
    merged = config_rules + action_rules
    _check_count(merged)
    return merged


# -- the router's day-2 actions (the charm and the lab) ------------------------------------------


def add_rule_refusal(name: str, config_rules: Iterable[Rule], added: Iterable[Rule]) -> str | None:
    """Why add-rule must refuse a rule of this name, or None."""
    if any(r.name == name for r in config_rules):
        return f"parameter 'name': option 'rules' has a rule {name!r}: choose another name"
    if any(r.name == name for r in added):
        return f"parameter 'name': rule {name!r} was added before: remove-rule name={name} first"
    return None


def remove_rule_refusal(
    name: str, config_rules: Iterable[Rule], added: Iterable[Rule], app: str
) -> str | None:
    """Why remove-rule must refuse this name, or None."""
    added = tuple(added)
    if any(r.name == name for r in config_rules):
        return (
            f"parameter 'name': rule {name!r} comes from option 'rules': "
            f"change it with juju config {app} rules=..."
        )
    if not any(r.name == name for r in added):
        names = ", ".join(r.name for r in added) or "none"
        return f"parameter 'name': no rule {name!r} was added by action (added: {names})"
    return None


def rule_entry(rule: Rule, origin: str) -> dict[str, Any]:
    """One list-rules entry: the rule as written, and where it came from (config | action)."""
    return {**rule.model_dump(mode="json", by_alias=True, exclude_none=True), "origin": origin}


def rule_text(rule: Rule) -> str:
    return json.dumps(rule.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True)


def cut_after(cut: Iterable[str], network: str, state: str) -> list[str]:
    """The cut links after set-link network=<network> state=<state>, sorted."""
    return sorted(set(cut) | {network} if state == "down" else set(cut) - {network})
