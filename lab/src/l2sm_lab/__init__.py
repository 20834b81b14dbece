"""The L2S-M lab: realises a bundle's networks and KNFs on this machine with the real data
plane (Open vSwitch, VXLAN, an OpenFlow controller, namespaces, nginx, nftables), using the
domain core the charms use."""
