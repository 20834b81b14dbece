"""The L2S-M domain core: names, addresses, pod attachments, interface plans, manifests.

No Juju and no Kubernetes client imports here: charms and the lab both import this package,
and so does the KNF package (l2sm-knf), so nothing of the controller's lives here: its CRDs,
objects, REST client and resync are in l2sm_controlplane.
"""
