"""Objects the l2sm-controller charm applies: Services, the pod webhook, action-made networks,
and (on Juju 2.9) the Secret holding what Juju 3 keeps in Juju secrets."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from l2sm_core.manifests import OWNER_KIND_ACTION, common_labels, with_spec_hash
from l2sm_core.manifests.network import l2network

OPENFLOW_PORT = 6633
REST_PORT = 8181
WEBHOOK_PORT = 9443
WEBHOOK_PATH = "/mutate-v1-pod"
# Juju labels every pod of a StatefulSet with its own name; selecting on it sends traffic to
# the leader's pod only, the one unit whose workloads run.
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"


def sdn_service_name(app: str) -> str:
    return f"{app}-sdn"


def webhook_service_name(app: str) -> str:
    return f"{app}-webhook"


def webhook_configuration_name(app: str, namespace: str) -> str:
    # Cluster-scoped: the namespace keeps two models' controllers from fighting over one name.
    return f"{app}-{namespace}-pods"


def sdn_service(app: str, namespace: str, pod_name: str) -> dict[str, Any]:
    """ClusterIP Service for OpenFlow (switches) and REST (manager, other charms).

    It routes to the pod even while the pod is not ready: readiness follows the manager
    (for the webhook Service), and a manager restart must not cut the switches off ONOS.
    """
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": sdn_service_name(app),
                "namespace": namespace,
                "labels": common_labels(app, namespace),
            },
            "spec": {
                "type": "ClusterIP",
                "selector": {POD_NAME_LABEL: pod_name},
                "publishNotReadyAddresses": True,
                "ports": [
                    {
                        "name": "openflow",
                        "port": OPENFLOW_PORT,
                        "targetPort": OPENFLOW_PORT,
                        "protocol": "TCP",
                    },
                    {"name": "rest", "port": REST_PORT, "targetPort": REST_PORT, "protocol": "TCP"},
                ],
            },
        }
    )


def webhook_service(app: str, namespace: str, pod_name: str) -> dict[str, Any]:
    """Only a ready pod (its manager serving) is an endpoint: with none, the API server
    refuses L2S-M pods at once, naming the Service, instead of a half-started manager."""
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": webhook_service_name(app),
                "namespace": namespace,
                "labels": common_labels(app, namespace),
            },
            "spec": {
                "type": "ClusterIP",
                "selector": {POD_NAME_LABEL: pod_name},
                "ports": [{"name": "webhook", "port": 443, "targetPort": WEBHOOK_PORT, "protocol": "TCP"}],
            },
        }
    )


def pod_webhook(app: str, namespace: str, ca_pem: str) -> dict[str, Any]:
    """The manager's pod mutator: only `l2sm: "true"` pods, on CREATE, as upstream."""
    return with_spec_hash(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {
                "name": webhook_configuration_name(app, namespace),
                "labels": common_labels(app, namespace),
            },
            "webhooks": [
                {
                    "name": "mutate-pod.l2sm.k8s.local",
                    "admissionReviewVersions": ["v1"],
                    "clientConfig": {
                        "service": {
                            "name": webhook_service_name(app),
                            "namespace": namespace,
                            "path": WEBHOOK_PATH,
                            "port": 443,
                        },
                        "caBundle": base64.b64encode(ca_pem.encode()).decode(),
                    },
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "timeoutSeconds": 10,
                    "objectSelector": {"matchLabels": {"l2sm": "true"}},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                            "scope": "Namespaced",
                        }
                    ],
                }
            ],
        }
    )


def action_network(app: str, namespace: str, name: str, cidr: str | None) -> dict[str, Any]:
    """An L2Network made by the create-network action, labelled so l2sm-network apps keep off."""
    return l2network(app, namespace, name, OWNER_KIND_ACTION, cidr)


# Kubernetes Secret keys: `<label>.<key>`, both parts of this alphabet (the API allows dots
# in a key, so the label and the key stay apart without escaping).
_SECRET_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def charm_secret_name(app: str) -> str:
    return f"{app}-secrets"


def charm_secret(app: str, namespace: str, entries: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """One Secret for every secret the charm keeps where Juju has none (Juju 2.9): each entry
    is a label (as a Juju secret would carry) with its content, stored as `<label>.<key>`.

    No spec hash: a digest of key material has no business in an annotation; the charm
    compares the content itself before it applies.
    """
    data = {}
    for label, content in entries.items():
        for key, value in content.items():
            for part in (label, key):
                if not _SECRET_PART.fullmatch(part):
                    raise ValueError(f"secret label or key {part!r}: letters, digits, '-' and '_' only")
            data[f"{label}.{key}"] = base64.b64encode(value.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": charm_secret_name(app),
            "namespace": namespace,
            "labels": common_labels(app, namespace),
        },
        "type": "Opaque",
        "data": data,
    }


def charm_secret_entries(secret: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """The entries of a Secret `charm_secret` built (label -> content); keys of any other
    shape are not ours and are left out."""
    entries: dict[str, dict[str, str]] = {}
    for name, value in ((secret or {}).get("data") or {}).items():
        label, dot, key = name.partition(".")
        if not dot or not _SECRET_PART.fullmatch(label) or not _SECRET_PART.fullmatch(key):
            continue
        entries.setdefault(label, {})[key] = base64.b64decode(value).decode()
    return entries
