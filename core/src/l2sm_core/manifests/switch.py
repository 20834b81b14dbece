"""The Overlay the l2sm-switch charm owns: switches on nodes, their links and template."""

from __future__ import annotations

from typing import Any

from l2sm_core.manifests import L2SM_API_VERSION, common_labels, with_spec_hash
from l2sm_core.naming import OVERLAY_PROVIDER
from l2sm_core.topology import Link

DEFAULT_SWITCH_IMAGE = "alexdecb/talpa:1.3.8"
SWITCH_CONTAINER = "l2sm-switch"
OVS_DB = "unix:/var/run/openvswitch/db.sock"

# The operator copies only containers, initContainers and hostNetwork from the template, so
# the fail mode must be set by the switch container itself. talpa creates the bridge and then
# blocks; the script waits for the bridge (asking OVS, not re-deriving its name) and sets
# fail_mode=secure, so a lost controller stops forwarding instead of flooding the VXLAN mesh.
SECURE_SWITCH_SCRIPT = f"""\
set -u
talpa sps-init --node_name="$NODENAME" &
talpa=$!
# The shell is PID 1: pass the pod's stop signal on instead of waiting out the grace period.
trap 'kill -TERM "$talpa" 2>/dev/null; wait "$talpa"; exit 143' TERM INT
bridge=""
while [ -z "$bridge" ]; do
  kill -0 "$talpa" 2>/dev/null || {{ wait "$talpa"; exit $?; }}
  bridge=$(ovs-vsctl --db={OVS_DB} list-br 2>/dev/null | grep '^br-' | head -n 1)
  [ -n "$bridge" ] || sleep 1
done
ovs-vsctl --db={OVS_DB} set-fail-mode "$bridge" secure
echo "fail_mode=secure set on $bridge"
wait "$talpa"
"""


def switch_container(image: str) -> dict[str, Any]:
    return {
        "name": SWITCH_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", SECURE_SWITCH_SCRIPT],
        "env": [{"name": "NODENAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
    }


def overlay(
    app: str,
    model: str,
    namespace: str,
    name: str,
    nodes: tuple[str, ...],
    links: tuple[Link, ...],
    interfaces: int,
    controller_ip: str,
    openflow_port: int,
    image: str,
) -> dict[str, Any]:
    """The Overlay for the operator; switches reach the controller by IP (no cluster DNS needed).

    It lives in the controller's namespace (where the operator looks for attachments), labelled
    with the application and Juju model that made it: a model's name is its namespace, so the
    pair names one application in the whole cluster."""
    return with_spec_hash(
        {
            "apiVersion": L2SM_API_VERSION,
            "kind": "Overlay",
            "metadata": {"name": name, "namespace": namespace, "labels": common_labels(app, model)},
            "spec": {
                "provider": {
                    "name": OVERLAY_PROVIDER,
                    "domain": [controller_ip],
                    "ofPort": str(openflow_port),
                },
                "topology": {
                    "nodes": list(nodes),
                    "links": [{"endpointA": link.a, "endpointB": link.b} for link in links],
                },
                "interfaceNumber": interfaces,
                "switchTemplate": {"spec": {"containers": [switch_container(image)]}},
            },
        }
    )
