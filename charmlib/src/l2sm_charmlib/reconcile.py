"""The plumbing every charm here shares: why a reconcile stopped, typed config, the
controller relation, the Kubernetes client, and one status per dispatch."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import ops
import pydantic

from l2sm_core.validation import clip, describe_validation_error
from l2sm_knf.kube import Kube, KubeForbidden, KubeNotFound, trust_message

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)
logger = logging.getLogger(__name__)


@dataclass
class Progress:
    """What stopped a reconcile, where the caller must know: the API server's 403."""

    forbidden: bool = False


class Blocked(Exception):
    """Stop: the operator must fix something (the message says what)."""


class Waiting(Exception):
    """Stop: something that resolves itself is not there yet."""


class Refused(Exception):
    """An action refused: the message names the parameter and the fix."""


def load_config(charm: ops.CharmBase, cls: type[T]) -> T:
    """The charm's config as `cls`; invalid options become Blocked naming each option."""
    try:
        return charm.load_config(cls)
    except pydantic.ValidationError as exc:
        raise Blocked(describe_validation_error(exc, "option")) from None


def integrate_command(charm: ops.CharmBase, one: str, other: str) -> str:
    """The command that relates two endpoints, in the dialect of the Juju that runs the charm."""
    verb = "relate" if charm.model.juju_version.major < 3 else "integrate"
    return f"juju {verb} {one} {other}"


def run_action_command(charm: ops.CharmBase, target: str, action: str) -> str:
    """The command that runs an action (Juju 2.9 has `run-action --wait`; 3.x `run`)."""
    if charm.model.juju_version.major < 3:
        return f"juju run-action {target} {action} --wait"
    return f"juju run {target} {action}"


class DispatchStatus:
    """One status per dispatch: a refusal met while acting wins (some causes only show then,
    like a workload that will not start); otherwise a fresh read-only assessment, done once
    for both collect-status events. The assessment may raise Blocked or Waiting (the inputs
    it reads say why), or meet a 403: each becomes its status here, once for every charm."""

    def __init__(self, assess: Callable[[], ops.StatusBase], app_name: str):
        self._assess = assess
        self._app_name = app_name
        self._status: ops.StatusBase | None = None
        self.blocked_by: str | None = None

    def get(self) -> ops.StatusBase:
        if self._status is None:
            self._status = ops.BlockedStatus(self.blocked_by) if self.blocked_by else self._assessed()
        return self._status

    def _assessed(self) -> ops.StatusBase:
        try:
            return self._assess()
        except Blocked as exc:
            return ops.BlockedStatus(str(exc))
        except (Waiting, KubeNotFound) as exc:
            return ops.WaitingStatus(str(exc))
        except KubeForbidden:
            return ops.BlockedStatus(trust_message(self._app_name))


class ReconcilingCharm(ops.CharmBase):
    """What every charm here has: a lazy Kubernetes client and one status per dispatch,
    given by the charm's own read-only `assess`, wired to both collect-status events."""

    def __init__(self, framework: ops.Framework, assess: Callable[[], ops.StatusBase]):
        super().__init__(framework)
        self._kube: Kube | None = None
        self._status = DispatchStatus(assess, self.app.name)
        framework.observe(self.on.collect_unit_status, self._on_collect_status)
        framework.observe(self.on.collect_app_status, self._on_collect_status)

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube.connect(self.app.name)
        return self._kube

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        event.add_status(self._status.get())

    @contextlib.contextmanager
    def acting(self) -> Iterator[Progress]:
        """Wrap a reconcile: Blocked, Waiting and a 403 stop it, logged; a refusal met while
        acting becomes this dispatch's status (some causes only show then, like a workload
        that will not start, or a rename while ports are held)."""
        progress = Progress()
        try:
            yield progress
        except Blocked as exc:
            self._status.blocked_by = str(exc)
            logger.info("reconcile stopped: %s", exc)
        except (Waiting, KubeNotFound) as exc:
            logger.info("reconcile stopped: %s", exc)
        except KubeForbidden:
            progress.forbidden = True
            logger.warning("Kubernetes API refused the charm: deploy with --trust")

    def run_action(self, event: ops.ActionEvent, params_cls: type[T], body: Callable[[T], dict]) -> None:
        """Params checked, leadership checked, then body(params) gives the results. A refusal
        (Refused, or Blocked/Waiting from the inputs it reads) fails the action, changing nothing."""
        # ops drops parameters the model does not name; Juju refuses them first
        # (additionalProperties: false), and so does the charm, should one get through.
        known = {name.replace("_", "-") for name in getattr(params_cls, "model_fields", {})}
        unknown = sorted(str(k) for k in event.params if k not in known)
        if known and unknown:
            event.fail(
                "; ".join(f"parameter '{clip(k, 64)}': unknown parameter" for k in unknown)
                + f" (this action takes {', '.join(sorted(known))})"
            )
            return
        try:
            params = event.load_params(params_cls)
        except pydantic.ValidationError as exc:
            event.fail(describe_validation_error(exc))
            return
        if not self.unit.is_leader():
            action = event.handle.kind.removesuffix("_action").replace("_", "-")
            event.fail(
                f"run this on the leader unit: {run_action_command(self, f'{self.app.name}/leader', action)}"
            )
            return
        try:
            event.set_results(body(params))
        except (Refused, Blocked, Waiting, KubeNotFound) as exc:
            event.fail(str(exc))
        except KubeForbidden:
            event.fail("the Kubernetes API refused the charm: deploy with --trust")
