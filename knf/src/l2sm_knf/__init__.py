"""Join L2S-M networks from any Kubernetes charm: the `l2sm_network` interface and its library.

    from l2sm_knf import L2smNetworks

Installs without the L2S-M controller's code (docs/decisions/0006-knf-library-distribution.md).
"""

from l2sm_knf.l2sm_network import (
    L2smNetworks,
    NetworkChangedEvent,
    NetworkEvent,
    NetworkLostEvent,
    NetworkReadyEvent,
)

__all__ = ["L2smNetworks", "NetworkChangedEvent", "NetworkEvent", "NetworkLostEvent", "NetworkReadyEvent"]
