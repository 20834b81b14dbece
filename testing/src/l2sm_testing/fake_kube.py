"""An in-memory stand-in for lightkube's Client: the boundary where charm tests cut.

It stores whole objects as dicts, answers get/list/apply/delete as the API server would
(404 for absent objects, 403 when `forbidden`, label selectors, a ClusterIP for Services)
and records every write, so tests can assert both what exists and what was sent.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from lightkube import codecs
from lightkube.core import exceptions as lightkube_exceptions
from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource


def api_error(code: int, message: str) -> ApiError:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "message": message}
    # The HTTP library lightkube itself uses (httpx2 in lightkube 1.x), whatever it is.
    return ApiError(response=lightkube_exceptions.httpx.Response(code, json=status))


def _kind(res: Any) -> str:
    return res._api_info.resource.kind


def _crd_backing(res: Any) -> str | None:
    """The CRD a kind needs to exist, or None for the API server's built-in kinds."""
    info = res._api_info
    group = info.resource.group
    if not group or "." not in group or group.endswith(".k8s.io"):
        return None
    return f"{info.plural}.{group}"


def _namespaced(res: Any) -> bool:
    return (
        issubclass(res, NamespacedResource) if isinstance(res, type) else isinstance(res, NamespacedResource)
    )


class FakeKube:
    def __init__(self, default_namespace: str = "default"):
        # Like lightkube's Client: a namespaced call without a namespace means this one
        # (the pod's own, in a charm), and ALL_NS ("*") means every namespace.
        self.default_namespace = default_namespace
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.forbidden = False
        self.writes: list[tuple[str, str, str, str]] = []  # (verb, kind, namespace, name)
        self.field_managers: set[str] = set()
        self._ips = (f"10.152.183.{i}" for i in itertools.count(10))
        self._uids = itertools.count(1)
        self._applied: dict[tuple[tuple[str, str, str], str], dict[str, Any]] = {}

    # -- test helpers -----------------------------------------------------------------------

    def snapshot(self) -> FakeKube:
        """A copy of every object and of what each field manager applied, with no writes
        recorded: property tests start every example from one state. (deepcopy cannot copy
        the address and uid generators.)"""
        other = FakeKube(self.default_namespace)
        other.objects = copy.deepcopy(self.objects)
        other._applied = copy.deepcopy(self._applied)
        other.forbidden = self.forbidden
        return other

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def find(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [o for (k, _, _), o in sorted(self.objects.items()) if k == kind]

    def finish_deletion(self, kind: str, name: str, namespace: str = "") -> None:
        """What a controller does once its finalizer has run."""
        del self.objects[(kind, namespace, name)]

    # -- the Client surface the charms use ---------------------------------------------------

    def _guard(self, res: Any = None) -> None:
        if self.forbidden:
            raise api_error(403, "forbidden: the service account cannot do this")
        crd = _crd_backing(res) if res is not None else None
        if crd and self.find("CustomResourceDefinition", crd) is None:
            raise api_error(404, f"the server could not find the requested resource ({crd})")

    def _ns(self, res: Any, namespace: str | None) -> str:
        if not _namespaced(res):
            return ""
        return namespace or self.default_namespace

    def get(self, res: Any, name: str, *, namespace: str | None = None):
        self._guard(res)
        obj = self.find(_kind(res), name, self._ns(res, namespace))
        if obj is None:
            raise api_error(404, f"{_kind(res)} {name!r} not found")
        return codecs.from_dict(copy.deepcopy(obj))

    def list(self, res: Any, *, namespace: str | None = None, labels: dict[str, str] | None = None, **_: Any):
        self._guard(res)
        wanted = None if namespace == "*" else self._ns(res, namespace)
        result = []
        for (kind, ns, _name), obj in sorted(self.objects.items()):
            if kind != _kind(res) or (wanted is not None and ns != wanted):
                continue
            have = obj["metadata"].get("labels") or {}
            if all(have.get(k) == v for k, v in (labels or {}).items()):
                result.append(codecs.from_dict(copy.deepcopy(obj)))
        return result

    def apply(self, obj: Any, *, field_manager: str | None = None, force: bool = False, **_: Any):
        self._guard(type(obj))
        if not field_manager:
            raise api_error(400, "server-side apply needs a field manager")
        self.field_managers.add(field_manager)
        data = obj.to_dict()
        meta = data["metadata"]
        namespace = self._ns(type(obj), meta.get("namespace"))
        key = (data["kind"], namespace, meta["name"])
        old = self.objects.get(key)
        if data["kind"] == "Service":
            ip = (old or {}).get("spec", {}).get("clusterIP") or next(self._ips)
            data.setdefault("spec", {})["clusterIP"] = ip
        if old:
            # Server-side apply merges what this manager sends into the live object.
            data = _merge(copy.deepcopy(old), data)
        else:
            data["metadata"]["uid"] = f"uid-{next(self._uids)}"
        self.objects[key] = data
        self.writes.append(("apply", data["kind"], namespace, meta["name"]))
        return codecs.from_dict(copy.deepcopy(data))

    def patch(
        self,
        res: Any,
        name: str,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
        patch_type: Any = None,
        field_manager: str | None = None,
        **_: Any,
    ):
        self._guard(res)
        key = (_kind(res), self._ns(res, namespace), name)
        if key not in self.objects:
            raise api_error(404, f"{_kind(res)} {name!r} not found")
        obj = copy.deepcopy(obj)
        if getattr(patch_type, "name", "") == "APPLY":
            # Server-side apply: what this manager applied before and leaves out now goes.
            if not field_manager:
                raise api_error(400, "server-side apply needs a field manager")
            self.field_managers.add(field_manager)
            before = self._applied.get((key, field_manager), {})
            self.objects[key] = _merge(_drop_missing(self.objects[key], before, obj), obj)
            self._applied[(key, field_manager)] = obj
            self.writes.append(("apply", key[0], key[1], name))
        else:
            self.objects[key] = _merge(self.objects[key], obj)
            self.writes.append(("patch", key[0], key[1], name))
        result = codecs.from_dict(copy.deepcopy(self.objects[key]))
        meta = self.objects[key]["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[key]  # the last finalizer gone: the API server removes it now
        return result

    def delete(self, res: Any, name: str, *, namespace: str | None = None, cascade: Any = None, **_: Any):
        self._guard(res)
        key = (_kind(res), self._ns(res, namespace), name)
        if key not in self.objects:
            raise api_error(404, f"{_kind(res)} {name!r} not found")
        meta = self.objects[key]["metadata"]
        if getattr(cascade, "value", None) == "Foreground":
            # The garbage collector removes dependents first; here, at once.
            uid = meta.get("uid")
            for other_key, other in list(self.objects.items()):
                owners = other["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == uid for ref in owners):
                    del self.objects[other_key]
        if meta.get("finalizers"):
            # Like the API server: an object with finalizers only gets marked; its
            # controller (the test, here) removes it later with `finish_deletion`.
            meta.setdefault("deletionTimestamp", "2026-01-01T00:00:00Z")
        else:
            del self.objects[key]
        self.writes.append(("delete", _kind(res), key[1], name))


def _named(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) and "name" in v for v in value)


def _merge(live: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any]:
    """Maps merge key by key; lists of named items (containers) merge by name."""
    for key, value in applied.items():
        current = live.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            live[key] = _merge(current, value)
        elif _named(value) and _named(current) and value:
            by_name = {item["name"]: item for item in current}
            for item in value:
                by_name[item["name"]] = _merge(by_name.get(item["name"], {}), item)
            live[key] = list(by_name.values())
        else:
            live[key] = value
    return live


def _drop_missing(live: dict[str, Any], before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """Remove from live the fields a manager applied before and leaves out now."""
    for key, old in before.items():
        if key not in now:
            live.pop(key, None)
        elif isinstance(old, dict) and isinstance(now[key], dict) and isinstance(live.get(key), dict):
            live[key] = _drop_missing(live[key], old, now[key])
    return live
