"""Typed config, action params and peer data of the router. The values' rules are the
firewall's own (l2sm_core.cdn.firewall): the charm only names the option or parameter."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from l2sm_core.cdn.firewall import Endpoint, Ports, Rule, RuleName
from l2sm_core.validation import ActionParams, Flag, dns1123_label
from l2sm_knf.databag import Databag


class RouterConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    addresses: str = ""  # the KNF library reads and checks it
    ip_forward_sysctl: Flag = False
    default_policy: Literal["drop", "accept"] = "drop"
    rules: str = ""  # parsed by firewall.parse_rules, which names the rule and its field


def _absent_port(value: Any) -> Any:
    # OSM passes every primitive parameter, empty when not given.
    return None if value == "" or value is None else value


OptionalPorts = Annotated[Ports | None, pydantic.BeforeValidator(_absent_port)]


class _AddRuleFields(ActionParams):
    name: RuleName
    to: Endpoint
    protocol: Literal["tcp", "udp", "icmp", "any"]
    port: OptionalPorts = None
    action: Literal["accept", "drop"] = "accept"

    @pydantic.model_validator(mode="after")
    def _port_needs_transport(self):
        if self.port is not None and self.protocol not in ("tcp", "udp"):
            raise ValueError(f"parameter 'port': {self.port} needs protocol tcp or udp, not {self.protocol}")
        return self

    def rule(self) -> Rule:
        return Rule.model_validate(
            {
                "name": self.name,
                "from": getattr(self, "from"),
                "to": self.to,
                "protocol": self.protocol,
                "port": self.port,
                "action": self.action,
            }
        )


# `from` is a Python keyword, so the field gets its name this way: run_action knows a
# parameter by its field name (an alias would be refused as an unknown parameter).
_FROM: dict[str, Any] = {"from": (Endpoint, ...)}
AddRuleParams = pydantic.create_model("AddRuleParams", __base__=_AddRuleFields, **_FROM)


class RemoveRuleParams(ActionParams):
    name: RuleName


class ListRulesParams(ActionParams):
    pass


class SetLinkParams(ActionParams):
    network: Annotated[str, pydantic.AfterValidator(dns1123_label)]
    state: Literal["up", "down"]


class ShowRoutesParams(ActionParams):
    pass


class CheckConnectivityParams(ActionParams):
    # Checked by l2sm_core.probe.check, whose messages name the parameter.
    target: str
    count: int = 3


class PeerAppData(Databag):
    """What every unit shares, in the peer relation's app databag (the leader writes it): the
    rules actions added, in order, and the networks cut off. App-level, so a unit that replaces
    another (scale 0 then 1) applies the same firewall."""

    rules: list[Rule] = pydantic.Field(default_factory=list)
    cut_links: list[str] = pydantic.Field(default_factory=list, alias="cut-links")
