"""The CDN KNF charms' actions in the lab: the same params models, rules and results.

Params arrive as the Juju CLI takes them (`key=value`, each value read as a YAML scalar:
`wait=30` is an int, `all=true` a bool, `name=` the empty string), are refused when unknown
(naming each, as Juju and charmlib's run_action do), then validated by the charm's OWN params
model (charms/<charm>/src/models.py). Each action does what the charm's body does with the
same core calls (l2sm_core.cdn.results, firewall, jobs, probe), inside the unit's namespace.

Router action state is kept as the charm keeps its peer data, in the lab record:
`state.data["routers"][app] = {"rules": [Rule dicts, as written], "cut": [network names]}`
(see router_actions / set_router_actions, and added_rules / cut_links for plan_lab).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pydantic
import yaml

from l2sm_core import probe
from l2sm_core.cdn import firewall as fw
from l2sm_core.cdn import results, values
from l2sm_core.cdn.firewall import Rule, parse_rules
from l2sm_core.cdn.routes import kernel_routes, membership_entries
from l2sm_core.validation import clip, describe_validation_error
from l2sm_lab import knfs
from l2sm_lab.bundle import BundleError
from l2sm_lab.plan import CACHE, CONTENT_SERVER, RETRIES, ROUTER, LabPlan, UnitPlan
from l2sm_lab.procs import LabError, LabState, run

ROUTERS = "routers"
PROBE_TIMEOUT = 90.0


class ActionFailed(Exception):
    """The action failed (as `event.fail`): the message names the parameter and the fix."""


class LabContext(Protocol):
    @property
    def plan(self) -> LabPlan: ...

    @property
    def state(self) -> LabState: ...

    def unit_ns(self, unit: str) -> str: ...

    def replan(self) -> LabPlan:
        """The plan again from the bundle and state.data (router action state included)."""
        ...


# -- router action state -----------------------------------------------------------------------


@dataclass(frozen=True)
class RouterActions:
    rules: tuple[Rule, ...] = ()
    cut: tuple[str, ...] = ()


def router_actions(state: LabState, app: str) -> RouterActions:
    """What the router application's actions changed (its peer data in the charm)."""
    raw = state.data.get(ROUTERS, {}).get(app) or {}
    try:
        rules = tuple(Rule.model_validate(r) for r in raw.get("rules", []))
    except pydantic.ValidationError as exc:
        raise LabError(f"lab record: router {app}: unreadable rules: {clip(str(exc), 200)}") from None
    return RouterActions(rules, tuple(str(c) for c in raw.get("cut", [])))


def set_router_actions(state: LabState, app: str, actions: RouterActions) -> None:
    """Record it in state.data (not saved: the caller saves once the ruleset loaded)."""
    state.data.setdefault(ROUTERS, {})[app] = {
        "rules": [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in actions.rules],
        "cut": sorted(actions.cut),
    }


def added_rules(state: LabState) -> dict[str, Sequence[Rule]]:
    """plan_lab's `added_rules`."""
    return {app: router_actions(state, app).rules for app in state.data.get(ROUTERS, {})}


def cut_links(state: LabState) -> dict[str, Sequence[str]]:
    """plan_lab's `cut_links`."""
    return {app: router_actions(state, app).cut for app in state.data.get(ROUTERS, {})}


# -- params ------------------------------------------------------------------------------------


def juju_value(text: str) -> Any:
    """One CLI value as Juju reads it: a YAML scalar, else the text itself."""
    if text == "":
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if value is None or isinstance(value, (dict, list)) else value


def load_params(model: type[pydantic.BaseModel], params: Mapping[str, str]) -> Any:
    """`params` checked by the charm's model; ActionFailed naming what is wrong."""
    fields = model.model_fields
    known = {(f.alias or n).replace("_", "-") for n, f in fields.items()}
    unknown = sorted(str(k) for k in params if k not in known)
    if unknown:
        raise ActionFailed(
            "; ".join(f"parameter '{clip(k, 64)}': unknown parameter" for k in unknown)
            + f" (this action takes {', '.join(sorted(known))})"
        )
    by_juju = {(f.alias or n): (f.alias or n) for n, f in fields.items()}  # as ops' load_params
    kwargs = {by_juju[k.replace("-", "_")]: juju_value(v) for k, v in sorted(params.items())}
    try:
        return model(**kwargs)
    except pydantic.ValidationError as exc:
        raise ActionFailed(describe_validation_error(exc)) from None


# -- running an action -------------------------------------------------------------------------


@dataclass
class _Call:
    ctx: LabContext
    unit: UnitPlan
    ns: str

    @property
    def state(self) -> LabState:
        return self.ctx.state


Body = Callable[[_Call, Any], dict[str, Any]]


@dataclass(frozen=True)
class Action:
    params: str  # the class in the charm's models.py (its run_action line)
    body: Body
    leader_only: bool = False


def run_action(ctx: LabContext, unit_name: str, action: str, params: dict[str, str]) -> dict[str, str]:
    """Run `action` on the unit as Juju would run the charm's; results as Juju's (strings)."""
    unit = ctx.plan.units.get(unit_name)
    if unit is None:
        known = ", ".join(sorted(ctx.plan.units)) or "none"
        raise ActionFailed(f"unit {unit_name!r} is not a KNF unit of the lab (its units: {known})")
    table = ACTIONS.get(unit.charm, {})
    if action not in table:
        offered = ", ".join(sorted(table)) or "none"
        raise ActionFailed(f"the lab runs no action {action!r} of {unit.charm} (it runs: {offered})")
    spec = table[action]
    module = ctx.plan.bundle.apps[unit.app].charm.models()
    model = getattr(module, spec.params, None) if module is not None else None
    if model is None:
        raise ActionFailed(f"charm {unit.charm} has no params model {spec.params} in its models.py")
    loaded = load_params(model, params)
    if spec.leader_only and unit.number != 0:
        raise ActionFailed(f"run this on the leader unit: {unit.app}/0")
    try:
        answer = spec.body(_Call(ctx, unit, ctx.unit_ns(unit.name)), loaded)
    except ValueError as exc:  # a core rule's refusal
        raise ActionFailed(str(exc)) from None
    except LabError as exc:
        raise ActionFailed(str(exc)) from None
    return {str(k): results.result_text(v) for k, v in answer.items()}


def _refuse(message: str | None) -> None:
    if message:
        raise ActionFailed(message)


def _check_connectivity(call: _Call, params: Any) -> dict[str, Any]:
    # Checked here, before any process starts: probe's messages name the parameter.
    target = probe.validate_target(params.target)
    count = probe.validate_count(params.count)
    argv = [sys.executable, "-m", "l2sm_core.probe", target, "--count", str(count)]
    done = run(argv, netns=call.ns, check=False, timeout=PROBE_TIMEOUT)
    if done.returncode not in (0, 1):
        raise ActionFailed(clip((done.stderr or done.stdout).strip() or "the probe failed", 300))
    return json.loads(done.stdout)


# -- the cache ---------------------------------------------------------------------------------

CACHE_JOBS = (results.FETCH, results.SYNC, results.SYNC_NOW)


def _paths(call: _Call) -> Any:
    assert call.unit.workload is not None
    return call.unit.workload.paths


def _origin(call: _Call) -> tuple[str, str]:
    """(base URL, manifest URL) the cache follows."""
    workload = call.unit.workload
    assert workload is not None
    if workload.origin is None or not workload.base_url:
        raise ActionFailed(
            "no origin: integrate with a content server (an origin relation in the bundle) "
            "or set option 'origin-url'"
        )
    return workload.base_url, urllib.parse.urljoin(workload.base_url, workload.origin.manifest)


def _cache_fetch(call: _Call, params: Any) -> dict[str, Any]:
    base, manifest = _origin(call)
    name, url = results.fetch_source(base, params.name, params.url)
    _refuse(results.fetch_conflict(name, knfs.running_jobs(call.state, call.unit, CACHE_JOBS)))
    argv = knfs.job_argv(
        "fetch",
        url=url,
        dest=_paths(call).content_dir,
        name=name,
        manifest=manifest,
        rate=values.render_rate(params.rate_limit) if params.rate_limit else None,
        retries=RETRIES,
        status=str(knfs.status_file(call.unit, results.FETCH)),
    )
    status = knfs.start_job(call.state, call.unit, call.ns, results.FETCH, argv, params.wait)
    return results.fetch_results(name, url, status)


def _cache_sync_now(call: _Call, params: Any) -> dict[str, Any]:
    _, manifest = _origin(call)
    if knfs.job_running(call.state, call.unit, results.SYNC_NOW):
        raise ActionFailed("a sync-now round is running: wait for it")
    argv = knfs.job_argv(
        "sync",
        origin_manifest=manifest,
        dest=_paths(call).content_dir,
        interval=0,
        retries=RETRIES,
        status=str(knfs.status_file(call.unit, results.SYNC_NOW)),
    )
    status = knfs.start_job(call.state, call.unit, call.ns, results.SYNC_NOW, argv, params.wait)
    return results.sync_now_results(manifest, status)


def _cache_scan(call: _Call) -> tuple[dict[str, int], dict[str, int]]:
    with os.scandir(_paths(call).content_dir) as entries:
        files = [(e.name, e.stat().st_size) for e in entries if e.is_file(follow_symlinks=False)]
    return results.cache_files(files)


def _cache_list(call: _Call, _: Any) -> dict[str, Any]:
    return results.cache_listing(*_cache_scan(call))


def _cache_purge(call: _Call, params: Any) -> dict[str, Any]:
    complete, partial = _cache_scan(call)
    names = results.purge_names(params.name, complete, partial)
    _refuse(results.purge_conflict(knfs.running_jobs(call.state, call.unit, CACHE_JOBS)))
    freed = 0
    for name in names:
        for path, size in ((name, complete.get(name)), (name + values.PARTIAL_SUFFIX, partial.get(name))):
            if size is not None:
                Path(_paths(call).content_dir, path).unlink(missing_ok=True)
                freed += size
    return results.purge_results(names, freed)


# -- the content server ------------------------------------------------------------------------

CONTENT_JOBS = (results.GENERATE, results.FETCH)


def _writing(call: _Call) -> dict[str, str]:
    return {
        job: str((status or {}).get("name", ""))
        for job, status in knfs.running_jobs(call.state, call.unit, CONTENT_JOBS).items()
    }


def _content_job(call: _Call, job: str, name: str, argv: list[str], wait: int) -> dict[str, Any]:
    status = knfs.start_job(call.state, call.unit, call.ns, job, argv, wait)
    answer = results.content_job_results(job, name, status)
    listed = None
    if answer["state"] == "done":
        listed = {e.name for e in knfs.refresh_manifest(call.unit, call.ns).entries}
    answer["manifest"] = results.manifest_word(name, answer["state"], listed)
    return answer


def _server_generate(call: _Call, params: Any) -> dict[str, Any]:
    _refuse(
        results.new_content_conflict(results.GENERATE, params.name, knfs.listing(call.unit), _writing(call))
    )
    argv = knfs.job_argv(
        "generate",
        dest=_paths(call).content_dir,
        name=params.name,
        size=params.size,
        status=str(knfs.status_file(call.unit, results.GENERATE)),
    )
    return _content_job(call, results.GENERATE, params.name, argv, params.wait)


def _server_add(call: _Call, params: Any) -> dict[str, Any]:
    name = params.name
    if name is None:
        try:
            name = results.url_content_name(params.url)
        except ValueError as exc:
            raise ActionFailed(f"parameter 'url': its file name {exc}; or give parameter 'name'") from None
    _refuse(results.new_content_conflict(results.FETCH, name, knfs.listing(call.unit), _writing(call)))
    argv = knfs.job_argv(
        "fetch",
        url=params.url,
        dest=_paths(call).content_dir,
        name=name,
        retries=RETRIES,
        status=str(knfs.status_file(call.unit, results.FETCH)),
    )
    answer = _content_job(call, results.FETCH, name, argv, params.wait)
    answer["url"] = params.url
    return answer


def _server_list(call: _Call, _: Any) -> dict[str, Any]:
    manifest = knfs.refresh_manifest(call.unit, call.ns)
    return results.server_listing((e.name, e.size, e.sha256) for e in manifest.entries)


def _server_remove(call: _Call, params: Any) -> dict[str, Any]:
    listing = knfs.listing(call.unit)
    partial_path = Path(_paths(call).content_dir, params.name + values.PARTIAL_SUFFIX)
    partial = partial_path.is_file()
    _refuse(results.remove_content_refusal(params.name, listing, partial, _writing(call)))
    if params.name in listing:
        Path(_paths(call).content_dir, params.name).unlink(missing_ok=True)
    if partial:
        partial_path.unlink(missing_ok=True)
    manifest = knfs.refresh_manifest(call.unit, call.ns)
    return results.remove_content_results(params.name, listing.get(params.name, 0), len(manifest.entries))


# -- the router --------------------------------------------------------------------------------


def _config_rules(call: _Call) -> tuple[Rule, ...]:
    config: Any = call.ctx.plan.bundle.apps[call.unit.app].config
    return parse_rules(config.rules, option="option 'rules'")


def _commit(call: _Call, new: RouterActions) -> LabPlan:
    """Load the firewall an action made on every unit of the router, then keep it: a
    ruleset the planner or nft refuses is not kept (the previous one stays loaded)."""
    state, app = call.state, call.unit.app
    before = copy.deepcopy(state.data.get(ROUTERS, {}).get(app))
    set_router_actions(state, app, new)
    try:
        plan = call.ctx.replan()
        for unit in plan.units.values():
            if unit.app == app:
                knfs.reload_router(state, unit, call.ctx.unit_ns(unit.name))
    except (BundleError, LabError) as exc:
        if before is None:
            state.data.get(ROUTERS, {}).pop(app, None)
        else:
            state.data[ROUTERS][app] = before
        # Back to what was loaded before (a unit may have taken the new ruleset already).
        plan = call.ctx.replan()
        for unit in plan.units.values():
            if unit.app == app:
                knfs.reload_router(state, unit, call.ctx.unit_ns(unit.name))
        raise ActionFailed(str(exc).removeprefix(f"application {app!r}: ")) from None
    state.save()
    return plan


def _firewall_of(plan: LabPlan, unit: UnitPlan) -> fw.Firewall:
    workload = plan.units[unit.name].workload
    assert workload is not None and workload.firewall is not None
    return workload.firewall


def _router_add(call: _Call, params: Any) -> dict[str, Any]:
    config_rules, done = _config_rules(call), router_actions(call.state, call.unit.app)
    rule: Rule = params.rule()
    _refuse(fw.add_rule_refusal(rule.name, config_rules, done.rules))
    plan = _commit(call, RouterActions((*done.rules, rule), done.cut))
    return {"added": fw.rule_text(rule), "rules": len(_firewall_of(plan, call.unit).rules)}


def _router_remove(call: _Call, params: Any) -> dict[str, Any]:
    config_rules, done = _config_rules(call), router_actions(call.state, call.unit.app)
    _refuse(fw.remove_rule_refusal(params.name, config_rules, done.rules, call.unit.app))
    plan = _commit(call, RouterActions(tuple(r for r in done.rules if r.name != params.name), done.cut))
    return {"removed": params.name, "rules": len(_firewall_of(plan, call.unit).rules)}


def _router_list(call: _Call, _: Any) -> dict[str, Any]:
    config: Any = call.ctx.plan.bundle.apps[call.unit.app].config
    done = router_actions(call.state, call.unit.app)
    listed = [fw.rule_entry(r, "config") for r in _config_rules(call)]
    listed += [fw.rule_entry(r, "action") for r in done.rules]
    return {
        "rules": json.dumps(listed),
        "default-policy": config.default_policy,
        "cut-links": json.dumps(sorted(done.cut)),
    }


def _router_set_link(call: _Call, params: Any) -> dict[str, Any]:
    done = router_actions(call.state, call.unit.app)
    try:
        _firewall_of(call.ctx.plan, call.unit).with_link(params.network, params.state)
    except ValueError as exc:
        raise ActionFailed(f"parameter 'network': {exc}") from None
    cut = fw.cut_after(done.cut, params.network, params.state)
    _commit(call, RouterActions(done.rules, tuple(cut)))
    return {"network": params.network, "state": params.state, "cut-links": json.dumps(cut)}


def _router_show_routes(call: _Call, _: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"networks": json.dumps(membership_entries(call.unit.memberships))}
    try:
        answer["kernel-routes"] = json.dumps(kernel_routes(call.ns))
    except Exception as exc:  # a report, as in the charm: not a reason to fail
        answer["kernel-routes-error"] = clip(str(exc), 200)
    return answer


# The charms' actions: name -> the params class of its `self.run_action(event, XParams, ...)`
# line and its leader_only (tests/test_knfs.py checks this against each charm.py).
ACTIONS: dict[str, dict[str, Action]] = {
    CACHE: {
        "fetch-content": Action("FetchParams", _cache_fetch),
        "list-content": Action("ListParams", _cache_list),
        "purge": Action("PurgeParams", _cache_purge),
        "sync-now": Action("SyncParams", _cache_sync_now),
        "check-connectivity": Action("ConnectivityParams", _check_connectivity),
    },
    CONTENT_SERVER: {
        "generate-content": Action("GenerateParams", _server_generate),
        "add-content": Action("AddParams", _server_add),
        "list-content": Action("ListParams", _server_list),
        "remove-content": Action("RemoveParams", _server_remove),
        "check-connectivity": Action("ConnectivityParams", _check_connectivity),
    },
    ROUTER: {
        "add-rule": Action("AddRuleParams", _router_add, leader_only=True),
        "remove-rule": Action("RemoveRuleParams", _router_remove, leader_only=True),
        "list-rules": Action("ListRulesParams", _router_list, leader_only=True),
        "set-link": Action("SetLinkParams", _router_set_link, leader_only=True),
        "show-routes": Action("ShowRoutesParams", _router_show_routes),
        "check-connectivity": Action("CheckConnectivityParams", _check_connectivity),
    },
}

__all__ = [
    "ACTIONS",
    "ActionFailed",
    "LabContext",
    "RouterActions",
    "added_rules",
    "cut_links",
    "router_actions",
    "run_action",
    "set_router_actions",
]
