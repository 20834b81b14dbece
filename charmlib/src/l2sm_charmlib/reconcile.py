"""The base class every platform charm here shares, and the exceptions that stop a reconcile.

A charm observes its events into its own `_reconcile(event)`, whose one try/except catches
the stops (Blocked, Waiting, KubeNotFound, KubeForbidden, KubeForeign) and hands each to `record_stop`.
Its status comes from its own read-only `assess`, which this class collects once per
dispatch for both collect-status events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeAlias, TypeVar

import ops
import pydantic

from l2sm_charmlib.hints import run_action_command
from l2sm_core.validation import clip, describe_validation_error
from l2sm_knf.kube import Kube, KubeForbidden, KubeForeign, KubeNotFound, trust_message

T = TypeVar("T")
logger = logging.getLogger(__name__)


class Blocked(Exception):
    """Stop: the operator must fix something (the message says what)."""


class Waiting(Exception):
    """Stop: something that resolves itself is not there yet."""


class Refused(Exception):
    """An action refused: the message names the parameter and the fix."""


# What may stop a reconcile; a charm's `_reconcile` catches these and nothing else.
Stop: TypeAlias = Blocked | Waiting | KubeNotFound | KubeForbidden | KubeForeign


class ReconcilingCharm(ops.CharmBase):
    """A lazy Kubernetes client, one status per dispatch, typed config and actions that
    refuse cleanly. Subclasses override `assess`."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._kube: Kube | None = None
        self._refusal: str | None = None
        self._status: ops.StatusBase | None = None
        framework.observe(self.on.collect_unit_status, self._on_collect_status)
        framework.observe(self.on.collect_app_status, self._on_collect_status)

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube.connect(self.app.name)
        return self._kube

    # -- status -------------------------------------------------------------------------------

    def assess(self) -> ops.StatusBase:
        """This unit's status from a fresh look that changes nothing. It may raise Blocked or
        Waiting (the inputs it reads say why) or meet a 404 or 403: each becomes its status."""
        raise NotImplementedError(f"{type(self).__name__} must override assess()")

    def record_stop(self, exc: Stop) -> None:
        """Note what stopped a reconcile, in the log. A Blocked becomes this dispatch's status
        over the assessment (some causes only show while acting, like a workload that will
        not start); the first one met stays, as it may be the cause of the later ones."""
        if isinstance(exc, KubeForbidden):
            logger.warning("Kubernetes API refused the charm: deploy with --trust")
            return
        logger.info("reconcile stopped: %s", exc)
        # Another owner's object under a name we use: only the operator can settle it.
        if isinstance(exc, (Blocked, KubeForeign)) and self._refusal is None:
            self._refusal = str(exc)

    @property
    def refusal(self) -> str | None:
        """The first Blocked a reconcile met in this dispatch, if any."""
        return self._refusal

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        # Worked out once: the unit and the app (on the leader) say the same.
        if self._status is None:
            self._status = ops.BlockedStatus(self._refusal) if self._refusal else self._assessed()
        event.add_status(self._status)

    def _assessed(self) -> ops.StatusBase:
        try:
            return self.assess()
        except (Blocked, KubeForeign) as exc:
            return ops.BlockedStatus(str(exc))
        except (Waiting, KubeNotFound) as exc:
            return ops.WaitingStatus(str(exc))
        except KubeForbidden:
            return ops.BlockedStatus(trust_message(self.app.name))

    # -- inputs -------------------------------------------------------------------------------

    def typed_config(self, cls: type[T]) -> T:
        """The charm's config as `cls`; invalid options are Blocked, naming each option."""
        try:
            return self.load_config(cls)
        except pydantic.ValidationError as exc:
            raise Blocked(describe_validation_error(exc, "option")) from None

    # -- actions ------------------------------------------------------------------------------

    def run_action(
        self,
        event: ops.ActionEvent,
        params_cls: type[T],
        body: Callable[[T], dict],
        *,
        leader_only: bool = True,
    ) -> None:
        """Params checked, leadership checked, then body(params) gives the results. A refusal
        (Refused, or Blocked/Waiting from the inputs it reads) fails the action, changing nothing.

        `leader_only=False` for actions on the unit's own state (its storage, its network
        namespace), which every unit answers for itself."""
        # ops drops parameters the model does not name; Juju refuses them first
        # (additionalProperties: false), and so does the charm, should one get through.
        fields = getattr(params_cls, "model_fields", {})
        # A field's alias is its parameter's name where Python cannot spell it (`from`).
        known = {(field.alias or name).replace("_", "-") for name, field in fields.items()}
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
        if leader_only and not self.unit.is_leader():
            action = event.handle.kind.removesuffix("_action").replace("_", "-")
            event.fail(
                f"run this on the leader unit: {run_action_command(self, f'{self.app.name}/leader', action)}"
            )
            return
        try:
            event.set_results(body(params))
        except (Refused, Blocked, Waiting, KubeNotFound, KubeForeign) as exc:
            event.fail(str(exc))
        except KubeForbidden:
            event.fail("the Kubernetes API refused the charm: deploy with --trust")
