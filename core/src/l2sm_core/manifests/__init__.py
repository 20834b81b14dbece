"""Builders for the Kubernetes objects the charms create, as plain dicts.

Plain dicts keep the domain core free of Kubernetes client imports: charms hand them to
lightkube, tests validate them with kubernetes-validate and the CRD schemas.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from l2sm_core.validation import clip, shown

# Labels every object made by these charms carries, so removal can find exactly its own.
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "juju-l2sm-charms"
PART_OF = "app.kubernetes.io/part-of"
INSTANCE = "app.kubernetes.io/instance"
MODEL = "l2sm-charms.juju.is/model"
# Who owns an L2Network: an `l2sm-network` application or the controller's create-network
# action. Each refuses to touch what the other owns.
OWNER_KIND = "l2sm-charms.juju.is/owner-kind"
OWNER = "l2sm-charms.juju.is/owner"
OWNER_KIND_APPLICATION = "application"
OWNER_KIND_ACTION = "action"


def _meta(obj: Any) -> Mapping[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def owner_of(obj: Any) -> str:
    """Who owns an object, as its owner labels say, in words that fit any message or table
    ("l2sm-network application 'cdn-net'"). The same in every charm, so an operator who reads
    it in a status line finds it again in list-networks."""
    labels = _meta(obj).get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    kind, name = labels.get(OWNER_KIND), shown(labels.get(OWNER, "?"), 80)
    if kind == OWNER_KIND_APPLICATION:
        return f"l2sm-network application {name}"
    if kind == OWNER_KIND_ACTION:
        return f"create-network action of {name}"
    # No owner label, or one neither charm writes: nothing in Juju answers for it.
    return "none in Juju, made with helm or kubectl?"


def identity(app: str, model: str) -> dict[str, str]:
    """The labels naming the application (of one model) that made an object. A model's name
    is its namespace, so the pair names one application in the whole cluster: what every
    write or delete of a named object checks on the live object first."""
    return {MANAGED_BY: MANAGED_BY_VALUE, INSTANCE: app, MODEL: model}


# The labels that say who owns an object; every other label anyone may change.
OWNERSHIP_LABELS = (MANAGED_BY, INSTANCE, MODEL, OWNER_KIND, OWNER)


def ownership(obj: Any) -> dict[str, str]:
    """The ownership labels an object (one we build) carries: what its live copy must carry
    for us to write over it."""
    labels = _meta(obj).get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    return {k: str(labels[k]) for k in OWNERSHIP_LABELS if k in labels}


def lacking(obj: Any, wanted: Mapping[str, str]) -> dict[str, str]:
    """The labels of `wanted` that the object does not carry with that value."""
    labels = _meta(obj).get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    return {k: v for k, v in wanted.items() if labels.get(k) != v}


def made_by(obj: Any) -> str:
    """Who made an object, as its labels say (an L2Network's owner, else the application)."""
    labels = _meta(obj).get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    if labels.get(OWNER_KIND):
        return owner_of(obj)
    if labels.get(MANAGED_BY) == MANAGED_BY_VALUE and labels.get(INSTANCE):
        return f"application {shown(labels[INSTANCE], 60)} in model {shown(labels.get(MODEL, '?'), 60)}"
    return "none in Juju, made with helm or kubectl?"


def foreign_refusal(obj: Any, wanted: Mapping[str, str], fix: str = "") -> str:
    """Why a live object of a name we use is left alone: which object, the ownership label it
    lacks, who made it, and the fix (by default: delete it, or label it to hand it over)."""
    meta = _meta(obj)
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    name = shown(f"{where}{meta.get('name', '?')}", 120)
    kind = clip(str(obj.get("kind", "object") if isinstance(obj, Mapping) else "object"), 60)
    missing = lacking(obj, wanted)
    first = next(iter(missing.items()), None)
    lacks = f"it lacks label {first[0]}={first[1]}" if first else "its labels are not ours"
    if not fix:
        scope = f"-n {meta.get('namespace')} " if meta.get("namespace") else ""
        labels = " ".join(f"{k}={v}" for k, v in missing.items())
        command = f"kubectl label --overwrite {scope}{kind.lower()} {meta.get('name', '?')} {labels}"
        fix = f"delete it if nothing needs it, or hand it over ({clip(command, 300)})"
    return f"{kind} {name} is not ours ({lacks}; owner: {made_by(obj)}), so it is left untouched: {fix}"


def deleting(obj: Any) -> bool:
    """Being deleted: Kubernetes has set its deletionTimestamp (finalizers may hold it a while)."""
    return bool(_meta(obj).get("deletionTimestamp"))


# Hash of the applied spec, so a charm re-applies only what changed.
SPEC_HASH = "l2sm-charms.juju.is/spec-hash"

L2SM_GROUP = "l2sm.l2sm.k8s.local"
L2SM_VERSION = "v1"
L2SM_API_VERSION = f"{L2SM_GROUP}/{L2SM_VERSION}"


def common_labels(app: str, model: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGED_BY_VALUE, PART_OF: "l2sm", INSTANCE: app, MODEL: model}


def spec_hash(obj: dict[str, Any]) -> str:
    """Stable digest of an object without its own hash annotation."""
    clean = json.loads(json.dumps(obj))
    meta = clean.get("metadata", {})
    meta.get("annotations", {}).pop(SPEC_HASH, None)
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    return hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:16]


def with_spec_hash(obj: dict[str, Any]) -> dict[str, Any]:
    obj.setdefault("metadata", {}).setdefault("annotations", {})[SPEC_HASH] = spec_hash(obj)
    return obj
