"""Objects the l2sm-controller charm applies: Services, the pod webhook, action-made networks."""

from __future__ import annotations

import base64
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
