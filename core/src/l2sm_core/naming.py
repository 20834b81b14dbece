"""Switch naming, exactly as the upstream switch (talpa) and the L2S-M operator compute it.

Ports reach the controller as `of:<dpid>/<N>`: if our names differed by one character from
the operator's, ports would land on a switch ONOS has never seen.
"""

from __future__ import annotations

import hashlib

from l2sm_core.validation import dns1123_label, shown

# The operator always names switches with this provider, whatever the Overlay's provider is.
OVERLAY_PROVIDER = "l2sm-controller"
# Port number of each switch's probe port (upstream RESERVED_PROBE_ID).
PROBE_PORT = 1999
_IF_TOKEN_LEN = 5
# The operator names an Overlay's attachments `<overlay>-veth<N>` and reads N back from the
# text after "veth"; the longest, -veth64, must still fit a 63-character name.
ATTACHMENT_INFIX = "-veth"
MAX_OVERLAY_NAME = 50


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bridge_name_for(node: str, provider: str = OVERLAY_PROVIDER) -> str:
    """`br-` and the first 4 bytes of sha256(node + provider), in lowercase hex."""
    if not node:
        raise ValueError("node name must not be empty")
    return "br-" + _sha256_hex(node + provider)[:8]


def datapath_id_for_bridge(bridge: str) -> str:
    """The first 8 bytes of sha256 of the bridge name (not of the node name): 16 hex digits."""
    return _sha256_hex(bridge)[:16]


def datapath_id(node: str, provider: str = OVERLAY_PROVIDER) -> str:
    return datapath_id_for_bridge(bridge_name_for(node, provider))


def device_id(node: str, provider: str = OVERLAY_PROVIDER) -> str:
    """The switch as ONOS names it."""
    return "of:" + datapath_id(node, provider)


def port_endpoint(node: str, port: int, provider: str = OVERLAY_PROVIDER) -> str:
    """An ONOS connect point `of:<dpid>/<N>`, the form the vnets API takes."""
    if port < 1:
        raise ValueError(f"port numbers start at 1, got {port}")
    return f"{device_id(node, provider)}/{port}"


def interface_name(node: str, port: int, provider: str = OVERLAY_PROVIDER) -> str:
    """Name of a pod-facing switch interface: `ls`, 5 hex digits of the dpid, the port number."""
    return f"ls{datapath_id(node, provider)[:_IF_TOKEN_LEN]}{port}"


def probe_interface_name(node: str, provider: str = OVERLAY_PROVIDER) -> str:
    return f"ls{datapath_id(node, provider)[:_IF_TOKEN_LEN]}p{PROBE_PORT}"


def vxlan_port_name(remote_ip: str) -> str:
    """VXLAN port towards a peer switch, as `talpa sps-init` names it: it depends on the remote only."""
    return "vxlan-" + _sha256_hex(remote_ip)[:5]


def overlay_name(value: str) -> str:
    """Return value if it can name an Overlay: a DNS-1123 label without "veth" (the operator
    would misread its attachments' port numbers), short enough for `<name>-veth<N>`."""
    dns1123_label(value)
    if "veth" in value:
        raise ValueError(f"{shown(value)} contains 'veth', which breaks L2S-M's port numbering")
    if len(value) > MAX_OVERLAY_NAME:
        raise ValueError(
            f"must be at most {MAX_OVERLAY_NAME} characters, got {len(value)} "
            "(the attachments are named <overlay>-veth<N>)"
        )
    return value


def attachment_name(overlay: str, port: int) -> str:
    """The NetworkAttachmentDefinition of switch port `port` (shared by every node)."""
    if port < 1:
        raise ValueError(f"port numbers start at 1, got {port}")
    return f"{overlay}{ATTACHMENT_INFIX}{port}"
