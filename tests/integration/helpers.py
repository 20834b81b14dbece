"""What the integration suite decides, kept apart from the calls that need a cluster: the
environment probe, the Juju dialect, wait conditions, action-result checks, bundle rewriting and
OSM's way of calling primitives. tests/test_integration_helpers.py runs all of it on jubilant's
and jubilant_backports' own types, so its logic is known before a cluster ever runs it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import jubilant
import jubilant_backports

from l2sm_core.manifests import MANAGED_BY, MANAGED_BY_VALUE, MODEL

Status = jubilant.Status | jubilant_backports.Status
Task = jubilant.Task | jubilant_backports.Task
Dialect = Literal["jubilant", "backports"]
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

SETUP_HINT = "tools/setup-microk8s.sh sets one up"
# OSM's VCA is Juju 2.9 and deploys only the ubuntu@22.04 packs; 3.6 and 4 deploy them too.
CHARM_BASE = "ubuntu@22.04"


# -- the environment -------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """The Juju controller the suite would use, or why there is none (`missing`, one line)."""

    controller: str = ""
    user: str = ""  # the controller account's, for offer URLs (`juju whoami` answers for the current one)
    cloud: str = ""
    agent_version: str = ""
    cli_version: str = ""
    missing: str = ""

    @property
    def dialect(self) -> Dialect:
        return dialect_for(self.agent_version)


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


def major(version: str) -> int | None:
    """The major number of a Juju version ("3.6.4", "2.9.43-ubuntu-amd64"), or None."""
    match = re.match(r"\s*(\d+)\.", version)
    return int(match.group(1)) if match else None


def dialect_for(agent_version: str) -> Dialect:
    """Juju 2.9 controllers (OSM's VCA) need jubilant_backports; 3.x and 4 jubilant."""
    return "backports" if major(agent_version) == 2 else "jubilant"


def probe(
    controller: str | None = None,
    *,
    run: Runner = _run,
    which: Callable[[str], str | None] = shutil.which,
) -> Environment:
    """Find the controller (the current one unless named) and its cloud, without changing
    anything; `missing` says, in one line, what is absent: the juju command, a controller, or a
    Kubernetes cloud under it."""
    if which("juju") is None:
        return Environment(missing=f"no `juju` command on PATH ({SETUP_HINT})")
    cli = run(["juju", "version", "--format", "json"])
    cli_version = json.loads(cli.stdout) if cli.returncode == 0 and cli.stdout.strip() else ""
    args = ["juju", "show-controller", *([controller] if controller else []), "--format", "json"]
    shown = run(args)
    if shown.returncode != 0:
        return Environment(
            cli_version=str(cli_version),
            missing=f"no reachable Juju controller (`juju show-controller`: {_first_line(shown.stderr)}; "
            f"{SETUP_HINT})",
        )
    name, shown_controller = next(iter(json.loads(shown.stdout).items()))
    details = shown_controller.get("details") or {}
    user = str((shown_controller.get("account") or {}).get("user", ""))
    cloud, agent = str(details.get("cloud", "")), str(details.get("agent-version", ""))
    clouds = run(["juju", "clouds", "--controller", name, "--format", "json"])
    kind = ""
    if clouds.returncode == 0 and clouds.stdout.strip():
        kind = str((json.loads(clouds.stdout).get(cloud) or {}).get("type", ""))
    env = Environment(
        controller=name, user=user, cloud=cloud, agent_version=agent, cli_version=str(cli_version)
    )
    if kind != "k8s":
        why = (
            f"controller {name!r} is on cloud {cloud!r} of type {kind or 'unknown'!r}, not a Kubernetes cloud"
        )
        return dataclasses.replace(env, missing=f"{why} ({SETUP_HINT})")
    if major(env.cli_version) != major(agent):
        why = f"the juju command is {cli_version} and controller {name!r} runs {agent}"
        return dataclasses.replace(
            env, missing=f"{why}: use a juju command of the controller's major version"
        )
    return env


# -- status and waiting ----------------------------------------------------------------------


def unit_problems(status: Status, apps: Iterable[str], accept: Iterable[str] = ("active",)) -> list[str]:
    """Why the applications are not settled: each missing application, application without
    units, or unit whose workload status is not one of `accept` or whose agent is not idle,
    with its message. Empty when they are settled."""
    accepted = set(accept)
    problems = []
    for app in apps:
        info = status.apps.get(app)
        if info is None:
            problems.append(f"{app}: not in the model")
            continue
        if not info.units:
            problems.append(f"{app}: no units")
        for name, unit in sorted(info.units.items()):
            workload = unit.workload_status
            if workload.current not in accepted:
                problems.append(f"{name}: {workload.current} ({workload.message})")
            elif unit.juju_status.current != "idle":
                problems.append(f"{name}: agent {unit.juju_status.current}")
    return problems


def settled(apps: Iterable[str], accept: Iterable[str] = ("active",)) -> Callable[[Status], bool]:
    """A `ready` for Juju.wait: every named application's units in `accept`, agents idle."""
    names, accepted = tuple(apps), tuple(accept)
    return lambda status: not unit_problems(status, names, accepted)


def errored(apps: Iterable[str]) -> Callable[[Status], bool]:
    """An `error` for Juju.wait: a unit of the named applications in error (it will not settle)."""
    names = tuple(apps)
    return lambda status: any(
        unit.workload_status.current == "error" or unit.juju_status.current == "error"
        for app in names
        if app in status.apps
        for unit in status.apps[app].units.values()
    )


def wait_for(
    what: str,
    test: Callable[[], Any],
    timeout: float,
    poll: float = 2.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Poll `test` until it returns something true, and return that; TimeoutError naming `what`
    and the last answer after `timeout` seconds."""
    deadline = clock() + timeout
    while True:
        answer = test()
        if answer:
            return answer
        if clock() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what} (last: {answer!r})")
        sleep(poll)


def leader_unit(status: Status, app: str) -> str:
    """The application's leader unit: jubilant_backports cannot run on `app/leader` (it looks the
    answer up by the name given), and N2VC too runs primitives on the leader it looked up."""
    info = status.apps.get(app)
    if info is None:
        raise LookupError(f"application {app!r} is not in the model ({', '.join(sorted(status.apps))})")
    leaders = [name for name, unit in info.units.items() if unit.leader]
    if len(leaders) != 1:
        raise LookupError(f"application {app!r} has {len(leaders)} leaders: {sorted(info.units)}")
    return leaders[0]


# -- action results --------------------------------------------------------------------------


def _json(results: Mapping[str, Any], key: str) -> Any:
    raw = results.get(key)
    if raw is None:
        raise KeyError(f"the action returned no {key!r}: {sorted(results)}")
    return json.loads(raw) if isinstance(raw, str) else raw


def switches_missing(topology: Mapping[str, Any], controller_status: Mapping[str, Any]) -> list[str]:
    """The nodes of l2sm-switch's show-topology whose switch the controller's controller-status
    does not show connected (by device id), each with why."""
    connected = {str(s.get("id")) for s in _json(controller_status, "switches") if s.get("available")}
    nodes = _json(topology, "nodes")
    if not nodes:
        return ["show-topology lists no node"]
    missing = []
    for node in nodes:
        if not node.get("ready"):
            missing.append(f"{node['name']}: switch {node.get('switch')} not ready")
        elif str(node.get("device-id")) not in connected:
            missing.append(f"{node['name']}: {node.get('device-id')} not connected to the controller")
    return missing


def network_members(show: Mapping[str, Any]) -> dict[str, str]:
    """unit -> address of an l2sm-network's show (refused members included, address '')."""
    return {str(unit): str(member.get("address", "")) for unit, member in _json(show, "members").items()}


def connectivity_problems(
    results: Mapping[str, Any], *, ttl: int | None = None, hops: Sequence[str] | None = None
) -> list[str]:
    """What a check-connectivity result lacks: replies, the trace reaching the target, the ttl
    and the hops expected (the PoC's: ttl 63, hops router then target)."""
    problems = []
    if results.get("received", "0") == "0":
        problems.append(f"no reply from {results.get('target')} ({results.get('errors', 'no error given')})")
    if results.get("reached") != "true":
        problems.append(f"the trace did not reach {results.get('target')}: hops {results.get('hops')!r}")
    if ttl is not None and results.get("ttl") != str(ttl):
        problems.append(f"ttl {results.get('ttl')!r}, expected {ttl}")
    if hops is not None and (results.get("hops") or "").split() != list(hops):
        problems.append(f"hops {results.get('hops')!r}, expected {' '.join(hops)!r}")
    return problems


def listed_bytes(listing: Mapping[str, Any], key: str, name: str) -> int | None:
    """Bytes of `name` in a cache's list-content `complete` or `partial` lines ("name bytes")."""
    for line in str(listing.get(key, "")).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == name:
            return int(parts[1])
    return None


def resume_problems(fetch_status: Mapping[str, Any], origin_sha256: str, cut_at: int) -> list[str]:
    """What the cache's fetch job status (its fetch.json) lacks for a download cut at `cut_at`
    bytes and resumed: done, the origin's sha256, a range request from past the cut's start."""
    problems = []
    if fetch_status.get("state") != "done":
        problems.append(f"state {fetch_status.get('state')!r} ({fetch_status.get('error')})")
    if not origin_sha256 or fetch_status.get("sha256") != origin_sha256:
        problems.append(f"sha256 {fetch_status.get('sha256')!r}, origin's {origin_sha256!r}")
    resumed = int(fetch_status.get("resumed-from") or 0)
    total = int(fetch_status.get("bytes") or 0)
    if not cut_at <= resumed < total:
        problems.append(
            f"resumed from byte {resumed}: expected at or after the cut ({cut_at}) and below {total}"
        )
    return problems


# -- bundles -----------------------------------------------------------------------------------


def charm_file(charms_dir: Path, charm: str, base: str = CHARM_BASE) -> Path:
    """Where a packed charm is: `<dir>/<charm>/<charm>_<base>-amd64.charm` (make stage's layout,
    packed in place) or `<dir>/<charm>_<base>-amd64.charm`."""
    name = f"{charm}_{base}-amd64.charm"
    nested = charms_dir / charm / name
    return nested if nested.is_file() or not (charms_dir / name).is_file() else charms_dir / name


def local_charms(bundle: Mapping[str, Any], charms_dir: Path, base: str = CHARM_BASE) -> dict[str, Any]:
    """The bundle with every application's charm the packed file of that charm (by the charm's
    name, or a path's file name), as the local-charms overlays and OSM's juju-bundles do."""
    out = copy.deepcopy(dict(bundle))
    for spec in (out.get("applications") or {}).values():
        charm = str(spec["charm"])
        if charm.startswith((".", "/")):
            charm = Path(charm).name.split("_", 1)[0]
        spec["charm"] = str(charm_file(charms_dir, charm, base))
    return out


def with_offer(bundle: Mapping[str, Any], saas: str, url: str) -> dict[str, Any]:
    """The bundle consuming `saas` from `url` instead (a temporary core model's offer)."""
    out = copy.deepcopy(dict(bundle))
    entries = out.get("saas") or {}
    if saas not in entries:
        raise KeyError(f"the bundle consumes no {saas!r} (saas: {', '.join(entries) or 'none'})")
    entries[saas]["url"] = url
    return out


def network_plan(bundle: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """network application -> member application -> the address its `addresses` option asks
    for there ('' for one from the pool), from the bundle's `networks` relations."""
    apps = bundle.get("applications") or {}
    plan: dict[str, dict[str, str]] = {}
    for relation in bundle.get("relations") or []:
        ends = [str(end).split(":", 1) for end in relation]
        network = next((app for app, *ep in ends if ep == ["network"]), None)
        member = next((app for app, *ep in ends if ep == ["networks"]), None)
        if network is None or member is None:
            continue
        option = str(((apps.get(member) or {}).get("options") or {}).get("addresses", ""))
        asked = dict(entry.strip().split("=", 1) for entry in option.split(",") if "=" in entry)
        plan.setdefault(network, {})[member] = asked.get(network, "")
    return plan


def members_problems(members: Mapping[str, str], planned: Mapping[str, str]) -> list[str]:
    """What a network's members (show) lack against its plan (network_plan): every planned
    application's units there with an address, its lowest unit at the asked one, and no other
    application."""
    problems = []
    by_app: dict[str, dict[str, str]] = {}
    for unit, address in members.items():
        by_app.setdefault(unit.split("/", 1)[0], {})[unit] = address
    for app, asked in sorted(planned.items()):
        units = by_app.pop(app, {})
        if not units:
            problems.append(f"{app}: no unit is a member")
        # Each unit takes the first free address from the asked one: the lowest unit gets it.
        for index, (unit, address) in enumerate(sorted(units.items(), key=lambda u: int(u[0].split("/")[1]))):
            if not address:
                problems.append(f"{unit}: no address")
            elif asked and index == 0 and address != asked:
                problems.append(f"{unit}: {address}, asked for {asked}")
    problems += [f"{unit}: a member, not in the bundle" for units in by_app.values() for unit in units]
    return problems


def charms_of(bundle: Mapping[str, Any]) -> set[str]:
    """The charm names a bundle deploys (a path's file name read as `<charm>_<base>...`)."""
    names = set()
    for spec in (bundle.get("applications") or {}).values():
        charm = str(spec["charm"])
        names.add(Path(charm).name.split("_", 1)[0] if charm.startswith((".", "/")) else charm)
    return names


# -- OSM -----------------------------------------------------------------------------------------


def osm_model_name(kdu: str, nsr_id: str | None = None) -> str:
    """The model OSM deploys a KDU bundle into: `<kdu-name>-<nsr-id>`, the id a 36-character uuid."""
    nsr = nsr_id or str(uuid.uuid4())
    if len(nsr) != 36:
        raise ValueError(f"an NS record id is a 36-character uuid, not {nsr!r}")
    name = f"{kdu}-{nsr}"
    if len(name) > 63:
        raise ValueError(f"model {name!r} is over 63 characters: OSM could not make its namespace")
    return name


@dataclass(frozen=True)
class Primitive:
    """One VNFD primitive: `initial` ones carry `value`s, day-2 ones `default-value`s."""

    name: str
    initial: bool
    parameters: tuple[Mapping[str, Any], ...]

    def params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What LCM hands N2VC for it: every declared parameter, given or defaulted (NBI refuses a
        day-2 call that leaves out one without a non-empty default), INTEGER through int(),
        BOOLEAN true unless "false", STRING as it is; an undeclared one is refused, as NBI does."""
        given = dict(given or {})
        declared = {str(p["name"]): p for p in self.parameters}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ValueError(f"{self.name}: parameters {unknown} are not declared ({', '.join(declared)})")
        out: dict[str, Any] = {}
        for name, spec in declared.items():
            field = "value" if self.initial else "default-value"
            if name in given:
                value = given[name]
            elif spec.get(field) not in (None, "") or (self.initial and field in spec):
                value = spec[field]
            else:
                raise ValueError(f"{self.name}: parameter {name!r} has no default: OSM asks for it")
            out[name] = _osm_value(str(spec.get("data-type", "STRING")), value)
        return out

    def application(self, given: Mapping[str, Any] | None = None) -> str:
        app = self.params(given).get("application-name")
        if not app:
            raise ValueError(f"{self.name}: no application-name: N2VC cannot tell where to run it")
        return str(app)


def _osm_value(data_type: str, value: Any) -> Any:
    if data_type == "INTEGER":
        return int(value)
    if data_type == "BOOLEAN":
        return str(value).lower() != "false"
    return value


def vnfd_primitives(vnfd: Mapping[str, Any], kdu: str) -> tuple[list[Primitive], dict[str, Primitive]]:
    """(day-1 primitives in seq order, day-2 primitives by name) of the KDU's day1-2 entry in the
    VNFD's first deployment flavour (OSM reads only df[0])."""
    df = (vnfd["vnfd"]["df"] or [{}])[0]
    entries = df["lcm-operations-configuration"]["operate-vnf-op-config"]["day1-2"]
    entry = next((e for e in entries if e.get("id") == kdu), None)
    if entry is None:
        raise KeyError(f"no day1-2 entry for KDU {kdu!r}")
    initial = sorted(entry.get("initial-config-primitive") or [], key=lambda p: int(p["seq"]))

    def primitive(p: Mapping[str, Any], first: bool) -> Primitive:
        return Primitive(str(p["name"]), first, tuple(p.get("parameter") or ()))

    return [primitive(p, True) for p in initial], {
        str(p["name"]): primitive(p, False) for p in entry.get("config-primitive") or []
    }


class ActionRunner(Protocol):
    def status(self) -> Any: ...

    def run(
        self, unit: str, action: str, params: Mapping[str, Any] | None = None, *, wait: float | None = None
    ) -> Any: ...


def run_on_leader(
    juju: ActionRunner, app: str, action: str, params: Mapping[str, Any] | None = None, wait: float = 600
) -> Task:
    """The action on the application's leader; TaskError (from jubilant) when it fails."""
    return juju.run(leader_unit(juju.status(), app), action, params, wait=wait)


def run_primitive(
    juju: ActionRunner, primitive: Primitive, given: Mapping[str, Any] | None = None, wait: float = 600
) -> Task:
    """Run a primitive as N2VC does: the action of its name, with every parameter
    (application-name included), on the leader of the application it names."""
    return run_on_leader(juju, primitive.application(given), primitive.name, primitive.params(given), wait)


# -- Kubernetes leftovers ------------------------------------------------------------------------


def leftover_selector(models: Iterable[str]) -> str:
    """The label selector of what our charms made in these models (l2sm_core.manifests)."""
    return f"{MANAGED_BY}={MANAGED_BY_VALUE},{MODEL} in ({','.join(sorted(models))})"


def leftovers(listing: Mapping[str, Any]) -> list[str]:
    """`kind namespace/name` of each object in a `kubectl get ... -o json` list."""
    out = []
    for item in listing.get("items") or []:
        meta = item.get("metadata") or {}
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        out.append(f"{item.get('kind')} {where}{meta.get('name')}")
    return sorted(out)


# What docs/cluster-access.md says our charms label (identity or owner labels), by kind, as
# `kubectl api-resources -o name` names them: the leftover check must list every one the
# cluster serves, or it cannot say nothing is left.
LABELLED_KINDS = {
    "CustomResourceDefinition": "customresourcedefinitions.apiextensions.k8s.io",
    "Service": "services",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations.admissionregistration.k8s.io",
    "Secret": "secrets",
    "L2Network": "l2networks.l2sm.l2sm.k8s.local",
    "Overlay": "overlays.l2sm.l2sm.k8s.local",
}


def listable_kinds(listed: subprocess.CompletedProcess[str]) -> tuple[list[str], list[str]]:
    """(kinds, discovery problems) of `kubectl api-resources --verbs=list -o name`: it exits
    non-zero when one API group's discovery fails (an aggregated API down, such as metrics)
    yet prints every kind it did find."""
    kinds = sorted({line.strip() for line in listed.stdout.splitlines() if line.strip()})
    problems = []
    if listed.returncode != 0:
        problems = sorted({line.strip() for line in listed.stderr.splitlines() if line.strip()})
        problems = problems or [f"kubectl api-resources exited {listed.returncode}"]
    return kinds, problems


@dataclass(frozen=True)
class LeftoverScan:
    """One look for labelled objects: what is `left`, the kinds `skipped` (not ours, and
    kubectl could not list them: noted, not fatal) and `unknown`, why it cannot conclude (one
    of our labelled kinds, or kind discovery itself, failed)."""

    left: list[str]
    skipped: list[str]
    unknown: list[str]

    @property
    def clean(self) -> bool:
        return not self.left and not self.unknown

    def report(self, what: str) -> str:
        parts = []
        if self.left:
            parts.append(f"left behind after {what}: {self.left}")
        if self.unknown:
            parts.append(f"cannot tell what is left after {what}: {self.unknown}")
        if self.skipped:
            parts.append(f"not checked (kubectl could not list them): {self.skipped}")
        return "; ".join(parts) or f"nothing left after {what}"


def _listing(done: subprocess.CompletedProcess[str]) -> tuple[list[str] | None, str]:
    if done.returncode != 0:
        return None, _first_line(done.stderr)
    try:
        return leftovers(json.loads(done.stdout)), ""
    except (ValueError, AttributeError, KeyError) as exc:
        return None, f"unreadable kubectl output ({exc})"


def scan_leftovers(
    kinds: Sequence[str], discovery: Sequence[str], get: Callable[[Sequence[str]], Any]
) -> LeftoverScan:
    """Look for labelled objects of every listable kind: one `get` of them all (`get(kinds)`
    returns kubectl's CompletedProcess), else, when that fails, kind by kind, skipping a kind
    kubectl cannot list unless it is one of ours. `discovery` is what listing the kinds said
    was wrong; it makes the scan inconclusive only if no kind was found at all."""
    ours = set(LABELLED_KINDS.values())
    if not kinds:
        return LeftoverScan([], [], [f"no listable kind found: {'; '.join(discovery) or 'empty list'}"])
    # A group of ours whose discovery failed hides kinds we label: that is no "nothing left".
    groups = {kind.split(".", 1)[1] for kind in ours if "." in kind}
    skipped: list[str] = []
    unknown: list[str] = []
    for line in discovery:
        (unknown if any(group in line for group in groups) else skipped).append(f"discovery: {line}")
    found, why = _listing(get(kinds))
    if found is not None:
        return LeftoverScan(found, skipped, unknown)
    left: list[str] = []
    for kind in kinds:
        found, why = _listing(get([kind]))
        if found is not None:
            left += found
        else:
            (unknown if kind in ours else skipped).append(f"{kind}: {why}")
    return LeftoverScan(sorted(left), skipped, unknown)


def offers_connected(status: Status) -> dict[str, str]:
    """offer -> its connection counts, for each offer of the model that still has connections
    (Juju refuses to remove an application whose offer has any)."""
    return {
        name: f"{offer.total_connected_count} connected, {offer.active_connected_count} active"
        for name, offer in sorted(status.offers.items())
        if offer.total_connected_count or offer.active_connected_count
    }
