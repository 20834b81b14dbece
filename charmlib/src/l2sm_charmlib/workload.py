"""Workload plumbing the CDN KNF charms share: files pushed only when they change, layers
replanned only when the plan lacks them, commands whose failure is a Blocked status, and
one-shot jobs (l2sm_core.cdn.jobs) run as Pebble services that report in a status file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import ops

from l2sm_charmlib.reconcile import Blocked
from l2sm_core.validation import clip

FINISHED = ("done", "failed", "stopped")  # a job's final states (l2sm_core.cdn.jobs)


def push_if_changed(container: ops.Container, path: str, text: str, permissions: int = 0o644) -> bool:
    """Push `text` unless the file holds it already; True when it was pushed."""
    try:
        if container.pull(path).read() == text:
            return False
    except ops.pebble.PathError:
        pass
    container.push(path, text, make_dirs=True, permissions=permissions)
    return True


def plan_differs(container: ops.Container, layer: ops.pebble.Layer) -> bool:
    """Whether the plan lacks any of the layer's services or checks as written."""
    plan = container.get_plan()
    for name, service in layer.services.items():
        if name not in plan.services or plan.services[name].to_dict() != service.to_dict():
            return True
    for name, check in layer.checks.items():
        if name not in plan.checks or plan.checks[name].to_dict() != check.to_dict():
            return True
    return False


def run_or_blocked(container: ops.Container, command: list[str], failure: str) -> None:
    """Run `command` in the container; a non-zero exit is Blocked: `failure: <its stderr>`."""
    try:
        container.exec(command).wait_output()
    except ops.pebble.ExecError as exc:
        raise Blocked(clip(f"{failure}: {str(exc.stderr or '').strip()}", 300)) from None


def test_or_forget(container: ops.Container, command: list[str], failure: str, path: str) -> None:
    """Run the workload's own test of the config at `path` (e.g. `nginx -t`); when it fails,
    remove the file before raising Blocked, so the next hook pushes and tests it again
    instead of taking the refused file for the one in use."""
    try:
        run_or_blocked(container, command, failure)
    except Blocked:
        container.remove_path(path)
        raise


def result_text(value: Any) -> str:
    """A value as a Juju action result (strings only): null and booleans as the CLI writes them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def status_path(status_dir: str, job: str) -> str:
    """Where a job writes its status (its --status file)."""
    return f"{status_dir}/{job}.json"


class Jobs:
    """One-shot jobs in `container`, each a Pebble service writing `<status_dir>/<job>.json`."""

    def __init__(
        self,
        container: ops.Container,
        status_dir: str,
        owner: str,
        *,
        poll: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.container = container
        self.status_dir = status_dir
        self.owner = owner  # for the service summary: who started it
        self.poll = poll
        self.sleep = sleep

    def status_file(self, job: str) -> str:
        return status_path(self.status_dir, job)

    def status(self, job: str) -> dict[str, Any] | None:
        """The job's last status, or None when there is none (or it cannot be read)."""
        try:
            data = json.loads(self.container.pull(self.status_file(job)).read())
        except (ops.pebble.PathError, ops.pebble.ProtocolError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def start(self, job: str, command: str, wait: float) -> dict[str, Any]:
        """Start the job and return its status, waiting up to `wait` seconds for it to end:
        long work never holds a hook or action for longer than that."""
        # The last run's status must not pass for this one's.
        if self.container.exists(self.status_file(job)):
            self.container.remove_path(self.status_file(job))
        layer: ops.pebble.LayerDict = {
            "services": {
                job: {
                    "override": "replace",
                    "summary": f"{self.owner} {job} (started by an action)",
                    "command": command,
                    "startup": "disabled",
                    "on-success": "ignore",
                    "on-failure": "ignore",
                }
            }
        }
        self.container.add_layer(job, ops.pebble.Layer(layer), combine=True)
        self.container.start(job)
        deadline = time.monotonic() + wait
        while True:
            status = self.status(job) or {}
            if status.get("state") in FINISHED or time.monotonic() >= deadline:
                return status
            self.sleep(self.poll)
