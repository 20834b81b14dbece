"""Commands quoted in status lines and action failures, in the dialect of the Juju that runs
the charm (docs/decisions/0009): an operator can paste them as they are."""

from __future__ import annotations

import ops


def integrate_command(charm: ops.CharmBase, one: str, other: str) -> str:
    """The command that relates two endpoints (Juju 2.9 has `relate`; 3.x `integrate`)."""
    verb = "relate" if charm.model.juju_version.major < 3 else "integrate"
    return f"juju {verb} {one} {other}"


def run_action_command(charm: ops.CharmBase, target: str, action: str) -> str:
    """The command that runs an action (Juju 2.9 has `run-action --wait`; 3.x `run`)."""
    if charm.model.juju_version.major < 3:
        return f"juju run-action {target} {action} --wait"
    return f"juju run {target} {action}"
