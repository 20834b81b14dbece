"""The L2S-M charms' domain core: networks, names, addresses, REST client, manifests.

No Juju and no Kubernetes client imports here: charms and the lab both import this package.
"""

L2SM_VERSION = "2.8.7"
CONTROLLER_IMAGE = "alexdecb/l2sm-controller:2.5.3"
MANAGER_IMAGE = "alexdecb/l2sm-controller-manager:2.8.7"
