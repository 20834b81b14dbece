"""Sample objects the suites share: what other charms and the cluster would provide."""

import json

from l2sm_charmlib.kube import NAD_CRD_NAME

# l2sm_controller app data as l2sm-controller publishes it (before JSON encoding).
CONTROLLER_APP_DATA = {
    "host": "l2sm-controller-sdn.l2sm.svc.cluster.local",
    "namespace": "l2sm",
    "cluster-ip": "10.152.183.20",
    "openflow-port": 6633,
    "rest-url": "http://10.152.183.20:8181",
    "ready": True,
    "credentials-secret": "secret:cs0qk4fmp25c77ek0av0",
}

# The CRD Multus installs; the controller charm checks for it.
MULTUS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": NAD_CRD_NAME},
    "spec": {
        "group": "k8s.cni.cncf.io",
        "names": {"kind": "NetworkAttachmentDefinition", "plural": "network-attachment-definitions"},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True}],
    },
}


def l2sm_pod(
    name: str,
    node: str,
    attachments: list[str],
    networks: list[str] | None = None,
    namespace: str = "knfs",
    attachment_namespace: str | None = None,
    deleting: bool = False,
    phase: str = "Running",
) -> dict:
    """A pod the L2S-M webhook has mutated: its Multus list names `attachments` (NADs)."""
    multus = [
        {"name": nad} | ({"namespace": attachment_namespace} if attachment_namespace else {})
        for nad in attachments
    ]
    annotations = {"k8s.v1.cni.cncf.io/networks": json.dumps(multus)}
    if networks is not None:
        annotations["l2sm/networks"] = ", ".join(networks)
    meta = {"name": name, "namespace": namespace, "labels": {"l2sm": "true"}, "annotations": annotations}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-25T10:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]},
        "status": {"phase": phase},
    }
