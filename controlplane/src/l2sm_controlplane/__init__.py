"""The controller's side of the domain: the L2S-M CRDs, the controller's Kubernetes objects,
the ONOS vnets REST client and the resync that restores ONOS's state.

Pure like l2sm_core (no Juju, no Kubernetes client): the controller charm and the lab import
it; a KNF charm never needs it (docs/decisions/0006-knf-library-distribution.md).
"""

L2SM_VERSION = "2.8.7"  # the upstream release whose images and CRDs these are
CONTROLLER_IMAGE = "alexdecb/l2sm-controller:2.5.3"
MANAGER_IMAGE = "alexdecb/l2sm-controller-manager:2.8.7"
