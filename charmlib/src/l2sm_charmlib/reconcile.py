"""The plumbing every charm here shares: why a reconcile stopped, typed config, the
controller relation, the Kubernetes client, and one status per dispatch."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import ops
import pydantic
from lightkube import Client

from l2sm_charmlib.kube import Kube, KubeForbidden, KubeNotFound
from l2sm_core.interfaces import ControllerProviderAppData
from l2sm_core.validation import clip, describe_validation_error

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


def kube_client(app_name: str) -> Kube:
    return Kube(Client(field_manager=app_name), field_manager=app_name)


def load_config(charm: ops.CharmBase, cls: type[T]) -> T:
    """The charm's config as `cls`; invalid options become Blocked naming each option."""
    try:
        return charm.load_config(cls)
    except pydantic.ValidationError as exc:
        raise Blocked(describe_validation_error(exc, "option")) from None


class InvalidDatabag(ValueError):
    """What the other side of a relation wrote does not fit the schema: the message names
    each bad field (a value that is not JSON, or one the schema refuses)."""


def load_databag(relation: ops.Relation, cls: type[M], entity: ops.Unit | ops.Application) -> M:
    """`relation.load(cls, entity)`, but every way remote data can be wrong (not JSON, wrong
    type, refused by a validator) is an InvalidDatabag naming the field."""
    databag = relation.data[entity]
    # The schema's keys only: Juju's own keys (ingress-address, ...) are plain strings.
    known = {field.alias or name for name, field in cls.model_fields.items()}
    # Checked key by key first: json.loads alone would not say which field is not JSON.
    not_json = []
    for key, raw in databag.items():
        if key not in known:
            continue
        try:
            json.loads(raw)
        except (ValueError, RecursionError):
            not_json.append(f"field '{clip(key, 64)}': not JSON")
    if not_json:
        raise InvalidDatabag("; ".join(not_json))
    try:
        return relation.load(cls, entity)
    except pydantic.ValidationError as exc:
        raise InvalidDatabag(describe_validation_error(exc, "field")) from None
    except (TypeError, RecursionError) as exc:
        raise InvalidDatabag(f"unreadable data: {clip(str(exc), 120)}") from None


def integrate_command(charm: ops.CharmBase, one: str, other: str) -> str:
    """The command that relates two endpoints, in the dialect of the Juju that runs the charm."""
    verb = "relate" if charm.model.juju_version.major < 3 else "integrate"
    return f"juju {verb} {one} {other}"


def run_action_command(charm: ops.CharmBase, target: str, action: str) -> str:
    """The command that runs an action (Juju 2.9 has `run-action --wait`; 3.x `run`)."""
    if charm.model.juju_version.major < 3:
        return f"juju run-action {target} {action} --wait"
    return f"juju run {target} {action}"


def controller_data(
    charm: ops.CharmBase, endpoint: str, missing: type[Exception] = Blocked
) -> ControllerProviderAppData:
    """What l2sm-controller published on `endpoint`, once it is ready."""
    relation = charm.model.get_relation(endpoint)
    if relation is None or relation.app is None:
        hint = integrate_command(charm, f"{charm.app.name}:{endpoint}", "l2sm-controller")
        raise missing(
            f"integrate with l2sm-controller: {hint}"
            if missing is Blocked
            else f"waiting for the controller: {hint}"
        )
    if not relation.data[relation.app]:
        raise Waiting("waiting for the controller to publish its address")
    try:
        data = load_databag(relation, ControllerProviderAppData, relation.app)
    except InvalidDatabag as exc:
        raise Blocked(f"controller relation data: {exc}") from None
    if not data.ready:
        raise Waiting("waiting for the controller to be ready")
    return data


def trust_message(app_name: str) -> str:
    return f"deploy with --trust (juju trust {app_name} --scope=cluster)"


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
            self._kube = kube_client(self.app.name)
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
