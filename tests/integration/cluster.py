"""Calls on the cluster shared by the integration modules (their decisions are in helpers)."""

from __future__ import annotations

import json
import subprocess
import warnings
from collections.abc import Sequence
from typing import Any

from . import helpers


def kubectl_json(kubectl: Sequence[str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [*kubectl, *args, "-o", "json"], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout)


def model_name(juju: Any) -> str:
    return str(juju.model).split(":")[-1]


def _kubectl(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)


def scan(kubectl: Sequence[str], selector: str, run: helpers.Runner = _kubectl) -> helpers.LeftoverScan:
    """One look for objects matching `selector` in every kind the cluster lists; kubectl's
    failures become the scan's notes, never an exception."""
    kinds, discovery = helpers.listable_kinds(run([*kubectl, "api-resources", "--verbs=list", "-o", "name"]))

    def get(some: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return run([*kubectl, "get", ",".join(some), "-A", "-l", selector, "-o", "json"])

    return helpers.scan_leftovers(kinds, discovery, get)


def remove_and_check(
    juju: Any,
    apps: Sequence[str],
    kubectl: Sequence[str],
    saas: Sequence[str] = (),
    *,
    run: helpers.Runner = _kubectl,
    timeout: float = 300,
    poll: float = 10,
) -> None:
    """Remove the applications, then the offers this model consumes (`saas`: an offer with
    connections keeps its application, the core, from being removed), wait until they are
    gone, then until nothing our charms labelled with this model is left in the cluster
    (namespaced or cluster-wide)."""
    juju.remove_application(*apps, destroy_storage=True)
    juju.wait(lambda status: not set(apps) & set(status.apps), delay=5, timeout=20 * 60)
    for name in saas:
        juju.cli("remove-saas", name)
    if saas:
        juju.wait(lambda status: not set(saas) & set(status.app_endpoints), delay=5, timeout=10 * 60)
    selector = helpers.leftover_selector([model_name(juju)])
    what = f"removing {', '.join(apps)}"
    last: list[helpers.LeftoverScan] = []

    def nothing_left() -> bool:
        last[:] = [scan(kubectl, selector, run)]
        return last[0].clean

    try:
        helpers.wait_for(f"nothing labelled {selector}", nothing_left, timeout=timeout, poll=poll)
    except TimeoutError:
        raise AssertionError(last[0].report(what)) from None
    if last[0].skipped:
        warnings.warn(last[0].report(what), stacklevel=2)
