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

# The package's version, also where no distribution metadata exists (a charm's staged lib/).
__version__ = "0.1.0"

__all__ = ["L2smNetworks", "NetworkChangedEvent", "NetworkEvent", "NetworkLostEvent", "NetworkReadyEvent"]
