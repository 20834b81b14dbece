"""The Kubernetes kinds the platform charms handle beyond lightkube's own: L2S-M's and Multus's."""

from __future__ import annotations

from lightkube.generic_resource import create_namespaced_resource

from l2sm_controlplane.crds import CRD_KINDS, plural
from l2sm_core.manifests import L2SM_GROUP, L2SM_VERSION

# Every kind the L2S-M CRDs define (one list, in the control plane): deleting a CRD deletes
# all objects of its kind.
L2SM_KINDS = tuple(
    create_namespaced_resource(L2SM_GROUP, L2SM_VERSION, kind, plural(kind)) for kind in CRD_KINDS
)
L2Network, Overlay, NetworkEdgeDevice, QuarantinePodRequest = L2SM_KINDS
NetworkAttachmentDefinition = create_namespaced_resource(
    "k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition", "network-attachment-definitions"
)
# The name of Multus's CRD for that kind: its presence says Multus is installed.
NAD_CRD_NAME = "network-attachment-definitions.k8s.cni.cncf.io"
