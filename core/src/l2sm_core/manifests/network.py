"""L2Network objects, labelled with their owner: an application or the controller's action."""

from __future__ import annotations

from typing import Any

from l2sm_core.manifests import L2SM_API_VERSION, OWNER, OWNER_KIND, common_labels, with_spec_hash
from l2sm_core.validation import dns1123_label, ipv4_prefix


def l2network(
    app: str, namespace: str, name: str, owner_kind: str, cidr: str | None = None
) -> dict[str, Any]:
    """A vnet L2Network. With a CIDR the L2S-M webhook hands out addresses itself; networks
    whose addresses Juju manages carry none. The name and CIDR are checked again here, the
    last step before the cluster: every caller's checks end in the same rules."""
    spec: dict[str, Any] = {"type": "vnet"}
    if cidr:
        spec["networkCIDR"] = str(ipv4_prefix(cidr))
    labels = common_labels(app, namespace) | {OWNER_KIND: owner_kind, OWNER: app}
    return with_spec_hash(
        {
            "apiVersion": L2SM_API_VERSION,
            "kind": "L2Network",
            "metadata": {"name": dns1123_label(name), "namespace": namespace, "labels": labels},
            "spec": spec,
        }
    )
