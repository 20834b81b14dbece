"""A charm's one door to Kubernetes: lightkube, server-side apply, dicts in and out.

Errors a charm must tell its user about come out as three exceptions: KubeForbidden (no
--trust), KubeNotFound (a write met a 404) and KubeForeign (the live object of that name is
not ours). Everything else is lightkube's ApiError.

With --trust a charm may write anything in the cluster, so every write and delete of a named
object checks, on the live object, the ownership labels the caller says it must carry (an
object we build carries them itself): a name is no proof of ownership.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lightkube import ALL_NS, Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource
from lightkube.types import CascadeType, PatchType

from l2sm_core.manifests import SPEC_HASH, foreign_refusal, lacking, ownership

logger = logging.getLogger(__name__)


def trust_message(app_name: str) -> str:
    return f"deploy with --trust (juju trust {app_name} --scope=cluster)"


class KubeForbidden(Exception):
    """The API server refused the charm (403): the application was not deployed with --trust."""


class KubeNotFound(Exception):
    """A write met a 404: the kind is unknown to the cluster (its CRD not installed yet, or
    removed) or the object is gone. The message says which, for an action failure or status."""


class KubeForeign(Exception):
    """The live object of a name we use lacks our ownership labels: it was left untouched.
    The message names the object, the label it lacks, its owner and the fix."""

    def __init__(self, obj: dict[str, Any], wanted: Mapping[str, str], fix: str = ""):
        super().__init__(foreign_refusal(obj, wanted, fix))
        self.obj = obj
        self.lacking = lacking(obj, wanted)


def _code(exc: ApiError) -> int:
    return int(getattr(exc.status, "code", 0) or 0)


class Kube:
    def __init__(self, client: Client, field_manager: str):
        self.client = client
        self.field_manager = field_manager

    @classmethod
    def connect(cls, field_manager: str) -> Kube:
        """A client of the cluster the charm runs in, writing as `field_manager`."""
        return cls(Client(field_manager=field_manager), field_manager=field_manager)

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            if _code(exc) == 403:
                raise KubeForbidden(str(exc)) from exc
            raise

    def _write(self, what: str, missing: str, fn, *args, **kwargs):
        """A write; a 404 becomes KubeNotFound saying `what` is `missing`."""
        try:
            return self._call(fn, *args, **kwargs)
        except ApiError as exc:
            if _code(exc) == 404:
                raise KubeNotFound(f"{what}: {missing}") from exc
            raise

    def get(self, kind: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            kwargs = {"namespace": namespace} if namespace else {}
            return self._call(self.client.get, kind, name, **kwargs).to_dict()
        except ApiError as exc:
            if _code(exc) == 404:
                return None
            raise

    def list(
        self, kind: Any, namespace: str | None = None, labels: dict[str, str] | None = None
    ) -> list[dict]:
        """Objects of a kind; a namespaced kind without a namespace means every namespace.

        A kind the cluster does not know (its CRD absent) has no objects: an empty list.
        """
        kwargs: dict[str, Any] = {}
        if issubclass(kind, NamespacedResource):
            # Without this lightkube would list only the charm's own namespace.
            kwargs["namespace"] = namespace or ALL_NS
        if labels:
            kwargs["labels"] = labels
        try:
            return [obj.to_dict() for obj in self._call(self.client.list, kind, **kwargs)]
        except ApiError as exc:
            if _code(exc) == 404:
                return []
            raise

    def _refuse_foreign(self, live: dict[str, Any] | None, owner: Mapping[str, str] | None) -> None:
        if live is not None and owner and lacking(live, owner):
            raise KubeForeign(live, owner)

    def apply(self, obj: dict[str, Any]) -> bool:
        """Server-side apply, skipped when the live object carries the same spec hash.
        KubeForeign, writing nothing, when a live object of that name lacks the ownership
        labels `obj` carries."""
        resource = codecs.from_dict(obj)
        meta = obj["metadata"]
        live = self.get(type(resource), meta["name"], meta.get("namespace"))
        self._refuse_foreign(live, ownership(obj))
        wanted = meta.get("annotations", {}).get(SPEC_HASH)
        if live is not None and wanted and live["metadata"].get("annotations", {}).get(SPEC_HASH) == wanted:
            return False
        self._write(
            f"cannot create {obj['kind']} {meta['name']}",
            "the cluster does not know this kind (yet): l2sm-controller installs the L2S-M "
            "kinds, wait until it is active",
            self.client.apply,
            resource,
            field_manager=self.field_manager,
            force=True,
        )
        logger.info("applied %s %s", obj["kind"], meta["name"])
        return True

    def apply_patch(
        self,
        kind: Any,
        name: str,
        namespace: str | None,
        patch: dict[str, Any],
        owner: Mapping[str, str] | None = None,
    ) -> None:
        """Server-side apply of a partial object (untyped: a typed model would demand every
        required field). Fields this manager applied before and leaves out are removed. With
        `owner`, KubeForeign unless the live object carries those labels."""
        if owner:
            self._refuse_foreign(self.get(kind, name, namespace), owner)
        kwargs = {"namespace": namespace} if namespace else {}
        self._write(
            f"cannot patch {kind.__name__} {name}",
            "it is not in the cluster (any more)",
            self.client.patch,
            kind,
            name,
            patch,
            patch_type=PatchType.APPLY,
            field_manager=self.field_manager,
            force=True,
            **kwargs,
        )
        logger.info("applied a patch to %s %s", kind.__name__, name)

    def merge_labels(
        self,
        kind: Any,
        name: str,
        namespace: str | None,
        labels: dict[str, str],
        owner: Mapping[str, str] | None = None,
    ) -> None:
        """Add labels to an object another controller owns (a JSON merge patch: unlike an apply,
        it does not take ownership, so later patches never drop earlier labels). With `owner`,
        KubeForeign unless the live object carries those labels (the ones its maker sets)."""
        if owner:
            self._refuse_foreign(self.get(kind, name, namespace), owner)
        kwargs = {"namespace": namespace} if namespace else {}
        patch = {"metadata": {"labels": labels}}
        self._write(
            f"cannot label {kind.__name__} {name}",
            "it is not in the cluster (any more)",
            self.client.patch,
            kind,
            name,
            patch,
            patch_type=PatchType.MERGE,
            **kwargs,
        )
        logger.info("labelled %s %s: %s", kind.__name__, name, ", ".join(sorted(labels)))

    def remove_finalizer(self, obj: dict[str, Any], kind: Any, finalizer: str) -> bool:
        """Take one finalizer off a live object (others stay), refused if the object changed
        since it was read (its resourceVersion). True when it was there and is now gone; an
        object deleted meanwhile is fine."""
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if finalizer not in finalizers:
            return False
        patch: dict[str, Any] = {"finalizers": [f for f in finalizers if f != finalizer]}
        if meta.get("resourceVersion"):
            patch["resourceVersion"] = meta["resourceVersion"]
        kwargs = {"namespace": meta["namespace"]} if meta.get("namespace") else {}
        try:
            self._call(
                self.client.patch,
                kind,
                meta["name"],
                {"metadata": patch},
                patch_type=PatchType.MERGE,
                **kwargs,
            )
        except ApiError as exc:
            if _code(exc) == 404:
                return False
            raise
        logger.info("removed finalizer %s from %s %s", finalizer, kind.__name__, meta["name"])
        return True

    def delete(
        self,
        kind: Any,
        name: str,
        namespace: str | None = None,
        foreground: bool = False,
        owner: Mapping[str, str] | None = None,
    ) -> bool:
        """True when something was deleted; absent objects are fine. With foreground, the object
        stays (marked) until Kubernetes has removed everything it owns. With `owner`,
        KubeForeign, deleting nothing, unless the live object carries those labels."""
        if owner:
            live = self.get(kind, name, namespace)
            if live is None:
                return False
            self._refuse_foreign(live, owner)
        try:
            kwargs: dict[str, Any] = {"namespace": namespace} if namespace else {}
            if foreground:
                kwargs["cascade"] = CascadeType.FOREGROUND
            self._call(self.client.delete, kind, name, **kwargs)
        except ApiError as exc:
            if _code(exc) == 404:
                return False
            raise
        return True
