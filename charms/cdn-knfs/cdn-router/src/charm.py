#!/usr/bin/env python3
"""cdn-router: routes between two or more L2S-M networks and filters what it forwards with
nftables. The KNF library joins the networks and offers each one's prefix to the others; the
firewall (l2sm_core.cdn.firewall) and its ruleset (l2sm_core.cdn.render) are the core's; this
charm wires options, actions and peer data to them and loads the ruleset into the pod."""

from __future__ import annotations

import json
import logging
from typing import Any

import ops
from models import (
    AddRuleParams,
    CheckConnectivityParams,
    ListRulesParams,
    PeerAppData,
    RemoveRuleParams,
    RouterConfig,
    SetLinkParams,
    ShowRoutesParams,
)

from l2sm_charmlib.reconcile import Blocked, ReconcilingCharm, Refused, Waiting
from l2sm_core import probe
from l2sm_core.cdn import firewall as fw
from l2sm_core.cdn.firewall import Firewall, RouterNetwork, Rule, build_firewall, merge_rules, parse_rules
from l2sm_core.cdn.render import render_ruleset
from l2sm_core.cdn.routes import kernel_routes, membership_entries
from l2sm_core.validation import clip
from l2sm_knf import L2smNetworks
from l2sm_knf.databag import InvalidDatabag, canonical_json, load_databag
from l2sm_knf.kube import KubeForbidden, KubeNotFound

logger = logging.getLogger(__name__)

NETWORKS = "networks"
PEERS = "router-peers"
ROUTER = "router"  # the workload container, and its one service
CHECK = "ruleset"
RULESET_PATH = "/etc/cdn-router/ruleset.nft"  # what is loaded: pushed only once nft took it
# The charm container shares the pod's network namespace: this is the router's own setting.
FORWARDING_SYSCTL = "net.ipv4.ip_forward"
NFT_TIMEOUT = 30.0  # seconds: loading even the largest ruleset takes well under one
STATUS_MAX = 480


def router_layer() -> ops.pebble.LayerDict:
    return {
        "summary": "cdn-router",
        "services": {
            ROUTER: {
                "override": "replace",
                # nftables lives in the kernel: the container only has to stay up for `nft`
                # to be exec'd in it. busybox's tail idles forever (no `sleep infinity` there).
                "summary": "keeps the router container up",
                "command": "tail -f /dev/null",
                "startup": "enabled",
            }
        },
        "checks": {
            CHECK: {
                "override": "replace",
                "period": "30s",
                "threshold": 3,
                "exec": {"command": f"nft list table inet {Firewall.TABLE}"},
            }
        },
    }


FORWARDING_OFF = (
    f"IP forwarding is off in the pod: allow the sysctl {FORWARDING_SYSCTL} on every node "
    f"(kubelet --allowed-unsafe-sysctls={FORWARDING_SYSCTL}), then set ip-forward-sysctl=true"
)
FORWARDING_PENDING = (
    f"IP forwarding is off although ip-forward-sysctl is true: the pod restarts with {FORWARDING_SYSCTL}=1 "
    "(a kubelet that refuses it leaves the new pod failing with SysctlForbidden)"
)


class CdnRouterCharm(ReconcilingCharm):
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        # `networks`: the memberships as the library last read them (it reads them only in
        # the events it observes; pebble-ready and actions need them too).
        # `apply_error`: why nft refused the last ruleset the unit tried to load, "" if none.
        self._stored.set_default(networks="[]", apply_error="")
        self.networks = L2smNetworks(
            self,
            NETWORKS,
            addresses=lambda: str(self.config.get("addresses", "")),
            forwards=True,
            # Asked of Kubernetes only when the operator says the kubelets allow it.
            ip_forward_sysctl=lambda: self.config.get("ip-forward-sysctl", False),
            container=ROUTER,
            workload_net_admin=True,  # nft in the router container needs NET_ADMIN
        )
        # The library observes these first: its memberships are fresh when we run.
        relation = self.on[NETWORKS]
        for event in (
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.start,
            self.on.update_status,
            self.on.leader_elected,
            relation.relation_created,
            relation.relation_joined,
            relation.relation_changed,
            relation.relation_departed,
            relation.relation_broken,
        ):
            framework.observe(event, self._on_networks_read)
        framework.observe(self.on[ROUTER].pebble_ready, self._reconcile)
        # Juju 3.6+: a ruleset gone from the kernel is put back at once (2.9: at update-status).
        framework.observe(self.on[ROUTER].pebble_check_failed, self._reconcile)
        framework.observe(self.on[PEERS].relation_created, self._reconcile)
        framework.observe(self.on[PEERS].relation_changed, self._reconcile)
        framework.observe(self.on.add_rule_action, self._on_add_rule)
        framework.observe(self.on.remove_rule_action, self._on_remove_rule)
        framework.observe(self.on.list_rules_action, self._on_list_rules)
        framework.observe(self.on.set_link_action, self._on_set_link)
        framework.observe(self.on.show_routes_action, self._on_show_routes)
        framework.observe(self.on.check_connectivity_action, self._on_check_connectivity)

    # -- inputs -------------------------------------------------------------------------------

    def _inputs(self) -> tuple[RouterConfig, tuple[Rule, ...], PeerAppData]:
        config = self.typed_config(RouterConfig)
        try:
            config_rules = parse_rules(config.rules, option="option 'rules'")
        except ValueError as exc:
            raise Blocked(str(exc)) from None
        return config, config_rules, self._peer_data()

    def _peer_data(self) -> PeerAppData:
        relation = self.model.get_relation(PEERS)
        if relation is None:
            return PeerAppData()
        try:
            return load_databag(relation, PeerAppData, self.app)
        except InvalidDatabag as exc:
            # Only the leader writes it: a hand edit. Nothing is loaded until it reads.
            raise Blocked(f"unreadable {PEERS} app data: {clip(str(exc), 300)}") from None

    def _memberships(self) -> list[dict[str, Any]]:
        return json.loads(self._stored.networks)

    def _router_networks(self) -> list[RouterNetwork]:
        return [
            RouterNetwork(name=m["network"], interface=m["interface"], prefix=m["cidr"] or None)
            for m in self._memberships()
            if m["interface"]
        ]

    def _firewall(self, config: RouterConfig, config_rules: tuple[Rule, ...], peer: PeerAppData) -> Firewall:
        """The firewall of these inputs; ValueError names the rule, option or link refused. A
        cut link of a network the router left stays stored, unused until it is back."""
        networks = self._router_networks()
        joined = {n.name for n in networks}
        rules = merge_rules(config_rules, peer.rules)
        cut = [name for name in peer.cut_links if name in joined]
        return build_firewall(networks, rules, config.default_policy, cut)

    def _checked_firewall(self) -> Firewall:
        """The firewall to load: Blocked naming what is wrong, or Waiting while a network the
        router is joining has no interface yet (a rule may name it)."""
        config, config_rules, peer = self._inputs()
        try:
            return self._firewall(config, config_rules, peer)
        except ValueError as exc:
            relations = [r for r in self.model.relations[NETWORKS] if r.app]
            if len(relations) > len(self._router_networks()):
                raise Waiting(f"{clip(str(exc), 300)}: waiting for the networks' interfaces") from None
            raise Blocked(clip(str(exc), STATUS_MAX)) from None

    # -- reconcile ----------------------------------------------------------------------------

    def _on_networks_read(self, event: ops.EventBase) -> None:
        self._stored.networks = json.dumps(
            membership_entries(self.networks.memberships),
            sort_keys=True,
        )
        self._reconcile(event)

    def _reconcile(self, event: ops.EventBase) -> None:
        try:
            firewall = self._checked_firewall()
            container = self._router()
            self._ensure_layer(container)
            # A new pod starts with an empty ruleset, whatever file it finds; a failing check
            # says the table went missing.
            force = isinstance(event, ops.PebbleReadyEvent) or _check_down(container)
            self._apply(container, render_ruleset(firewall), force=force, record=True)
        except (Blocked, Waiting, KubeNotFound, KubeForbidden) as exc:
            self.record_stop(exc)

    def _router(self) -> ops.Container:
        container = self.unit.get_container(ROUTER)
        if not container.can_connect():
            raise Waiting("waiting for the router container (Pebble)")
        return container

    def _ensure_layer(self, container: ops.Container) -> None:
        layer = ops.pebble.Layer(router_layer())
        plan = container.get_plan()
        if plan.services == layer.services and plan.checks == layer.checks:
            return
        container.add_layer(ROUTER, layer, combine=True)
        container.replan()
        logger.info("router layer changed: replanned")

    def _apply(self, container: ops.Container, ruleset: str, *, force: bool, record: bool = False) -> bool:
        """Load `ruleset` with one `nft -f` transaction if it is not what is loaded (or when
        forced); the file is pushed once nft took it, so it always says what is loaded. Blocked
        if nft refuses (the kernel keeps the previous ruleset whole); `record` keeps that
        refusal as the unit's status until a ruleset loads."""
        if _loaded(container) == ruleset and not force:
            return False
        try:
            container.exec(["nft", "-f", "-"], stdin=ruleset, timeout=NFT_TIMEOUT).wait_output()
        except ops.pebble.ExecError as exc:
            why = clip(" ".join(str(exc.stderr or exc).split()), 300)
            message = f"nft refused the ruleset ({why}); the previous ruleset stays loaded"
            if record:
                self._stored.apply_error = message
            raise Blocked(message) from None
        except ops.pebble.APIError as exc:  # e.g. no nft in the image: the operator must act
            why = clip(str(exc), 200)
            raise Blocked(
                f"cannot run nft in the router container (router-image must have nftables): {why}"
            ) from None
        except (ops.pebble.ChangeError, ops.pebble.TimeoutError) as exc:
            raise Waiting(f"nft did not finish in the router container: {clip(str(exc), 200)}") from None
        container.push(RULESET_PATH, ruleset, make_dirs=True)
        self._stored.apply_error = ""
        logger.info("ruleset loaded (%d lines)", ruleset.count("\n"))
        return True

    # -- status -------------------------------------------------------------------------------

    def assess(self) -> ops.StatusBase:
        network_status = self.networks.status()
        if isinstance(network_status, ops.BlockedStatus):
            return network_status  # the library's refusals name the option or network
        firewall = self._checked_firewall()
        if not self.networks.forwarding_enabled():
            asked = self.typed_config(RouterConfig).ip_forward_sysctl
            raise Blocked(FORWARDING_PENDING if asked else FORWARDING_OFF)
        if self._stored.apply_error:
            raise Blocked(self._stored.apply_error)
        if _loaded(self._router()) != render_ruleset(firewall):
            raise Waiting("the firewall's ruleset is not loaded yet (juju debug-log says why)")
        if not isinstance(network_status, ops.ActiveStatus):
            return network_status
        summary = f"firewall: {len(firewall.rules)} rules, policy {firewall.default_policy}"
        if firewall.cut_links:
            summary += f", cut: {', '.join(sorted(firewall.cut_links))}"
        return ops.ActiveStatus(clip(f"{network_status.message}; {summary}", STATUS_MAX))

    # -- actions ------------------------------------------------------------------------------

    def _commit(self, peer: PeerAppData, firewall: Firewall) -> None:
        """Load the firewall an action made, then store it: a ruleset nft refuses is not kept."""
        relation = self.model.get_relation(PEERS)
        if relation is None:
            raise Waiting(f"the {PEERS} relation is not set up yet: retry in a moment")
        self._apply(self._router(), render_ruleset(firewall), force=False)
        relation.save(peer, self.app, encoder=canonical_json)

    def _refusing(self, config: RouterConfig, config_rules: tuple[Rule, ...], peer: PeerAppData) -> Firewall:
        try:
            return self._firewall(config, config_rules, peer)
        except ValueError as exc:
            raise Refused(str(exc)) from None

    def _on_add_rule(self, event: ops.ActionEvent) -> None:
        self.run_action(event, AddRuleParams, self._add_rule)

    def _add_rule(self, params: Any) -> dict[str, Any]:
        config, config_rules, peer = self._inputs()
        rule: Rule = params.rule()
        refusal = fw.add_rule_refusal(rule.name, config_rules, peer.rules)
        if refusal:
            raise Refused(refusal)
        new = peer.model_copy(update={"rules": [*peer.rules, rule]})
        firewall = self._refusing(config, config_rules, new)
        self._commit(new, firewall)
        return {"added": fw.rule_text(rule), "rules": len(firewall.rules)}

    def _on_remove_rule(self, event: ops.ActionEvent) -> None:
        self.run_action(event, RemoveRuleParams, self._remove_rule)

    def _remove_rule(self, params: RemoveRuleParams) -> dict[str, Any]:
        config, config_rules, peer = self._inputs()
        refusal = fw.remove_rule_refusal(params.name, config_rules, peer.rules, self.app.name)
        if refusal:
            raise Refused(refusal)
        new = peer.model_copy(update={"rules": [r for r in peer.rules if r.name != params.name]})
        firewall = self._refusing(config, config_rules, new)
        self._commit(new, firewall)
        return {"removed": params.name, "rules": len(firewall.rules)}

    def _on_list_rules(self, event: ops.ActionEvent) -> None:
        self.run_action(event, ListRulesParams, self._list_rules)

    def _list_rules(self, _: ListRulesParams) -> dict[str, Any]:
        config, config_rules, peer = self._inputs()
        listed = [fw.rule_entry(r, "config") for r in config_rules] + [
            fw.rule_entry(r, "action") for r in peer.rules
        ]
        return {
            "rules": json.dumps(listed),
            "default-policy": config.default_policy,
            "cut-links": json.dumps(sorted(peer.cut_links)),
        }

    def _on_set_link(self, event: ops.ActionEvent) -> None:
        self.run_action(event, SetLinkParams, self._set_link)

    def _set_link(self, params: SetLinkParams) -> dict[str, Any]:
        config, config_rules, peer = self._inputs()
        firewall = self._refusing(config, config_rules, peer)
        try:
            firewall = firewall.with_link(params.network, params.state)
        except ValueError as exc:
            raise Refused(f"parameter 'network': {exc}") from None
        cut = fw.cut_after(peer.cut_links, params.network, params.state)
        self._commit(peer.model_copy(update={"cut_links": cut}), firewall)
        return {"network": params.network, "state": params.state, "cut-links": json.dumps(cut)}

    def _on_show_routes(self, event: ops.ActionEvent) -> None:
        self.run_action(event, ShowRoutesParams, self._show_routes, leader_only=False)

    def _show_routes(self, _: ShowRoutesParams) -> dict[str, Any]:
        results: dict[str, Any] = {"networks": json.dumps(self._memberships())}
        try:
            results["kernel-routes"] = json.dumps(kernel_routes())
        except Exception as exc:  # netlink is a report here, not a reason to fail the action
            results["kernel-routes-error"] = clip(str(exc), 200)
        return results

    def _on_check_connectivity(self, event: ops.ActionEvent) -> None:
        self.run_action(event, CheckConnectivityParams, self._check_connectivity, leader_only=False)

    def _check_connectivity(self, params: CheckConnectivityParams) -> dict[str, Any]:
        try:
            return dict(probe.check(params.target, params.count))
        except ValueError as exc:  # names the parameter
            raise Refused(str(exc)) from None


def _loaded(container: ops.Container) -> str | None:
    """The ruleset last loaded in this pod (None: none yet)."""
    try:
        return container.pull(RULESET_PATH).read()
    except (ops.pebble.PathError, FileNotFoundError):
        return None


def _check_down(container: ops.Container) -> bool:
    info = container.get_checks(CHECK).get(CHECK)
    return info is not None and info.status == ops.pebble.CheckStatus.DOWN


if __name__ == "__main__":  # pragma: nocover
    ops.main(CdnRouterCharm)
