"""Sample objects the suites share: what other charms and the cluster would provide."""

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
NAD_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
    "spec": {
        "group": "k8s.cni.cncf.io",
        "names": {"kind": "NetworkAttachmentDefinition", "plural": "network-attachment-definitions"},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True}],
    },
}
