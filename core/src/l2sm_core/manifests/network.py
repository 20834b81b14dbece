"""L2Network objects, labelled with their owner: an application or the controller's action."""

from __future__ import annotations

from typing import Any

from l2sm_core.manifests import L2SM_API_VERSION, OWNER, OWNER_KIND, common_labels, with_spec_hash


def l2network(
    app: str, namespace: str, name: str, owner_kind: str, cidr: str | None = None
) -> dict[str, Any]:
    """A vnet L2Network. With a CIDR the L2S-M webhook hands out addresses itself; networks
    whose addresses Juju manages carry none."""
    spec: dict[str, Any] = {"type": "vnet"}
    if cidr:
        spec["networkCIDR"] = cidr
    labels = common_labels(app, namespace) | {OWNER_KIND: owner_kind, OWNER: app}
    return with_spec_hash(
        {
            "apiVersion": L2SM_API_VERSION,
            "kind": "L2Network",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": spec,
        }
    )
