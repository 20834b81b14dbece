"""Calls on the cluster shared by the integration modules (their decisions are in helpers)."""

from __future__ import annotations

import json
import subprocess
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


def remove_and_check(juju: Any, apps: Sequence[str], kubectl: Sequence[str]) -> None:
    """Remove the applications, wait until they are gone, then until nothing our charms labelled
    with this model is left in the cluster (namespaced or cluster-wide)."""
    juju.remove_application(*apps, destroy_storage=True)
    juju.wait(lambda status: not set(apps) & set(status.apps), delay=5, timeout=20 * 60)
    listed = subprocess.run(
        [*kubectl, "api-resources", "--verbs=list", "-o", "name"], capture_output=True, text=True, check=True
    )
    kinds = ",".join(listed.stdout.split())
    selector = helpers.leftover_selector([model_name(juju)])
    left: list[str] = []

    def nothing_left() -> bool:
        left[:] = helpers.leftovers(kubectl_json(kubectl, "get", kinds, "-A", "-l", selector))
        return not left

    try:
        helpers.wait_for(f"nothing labelled {selector}", nothing_left, timeout=300, poll=10)
    except TimeoutError:
        raise AssertionError(f"left behind after removing {', '.join(apps)}: {left}") from None
