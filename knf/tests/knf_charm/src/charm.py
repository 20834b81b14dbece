"""knf/README.md's example charm with a router's options (forwards, workload NET_ADMIN), driven
by knf/tests and by its own tests/unit, which run with the KNF package alone."""

import ops

from l2sm_knf.l2sm_network import L2smNetworks, NetworkEvent


class TestKnfCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.networks = L2smNetworks(
            self,
            "networks",
            container="workload",
            addresses=self._addresses,
            forwards=self._forwards,
            workload_net_admin=self._forwards(),
        )
        framework.observe(self.networks.on.ready, self._on_network)
        framework.observe(self.networks.on.changed, self._on_network)
        framework.observe(self.networks.on.lost, self._on_network)
        framework.observe(self.on.collect_unit_status, self._on_collect_status)

    def _addresses(self) -> str:
        return str(self.config.get("addresses", ""))

    def _forwards(self) -> bool:
        return bool(self.config.get("forwards", False))

    def _on_network(self, event: NetworkEvent) -> None:
        # A real KNF would re-render its workload config here (e.g. listen addresses); this
        # one shows its own addresses as the workload version, where the tests can read them.
        own = [f"{m.network}={m.address}" for m in self.networks.memberships if m.address]
        self.unit.set_workload_version(" ".join(own))

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        event.add_status(self.networks.status())


if __name__ == "__main__":  # pragma: nocover
    ops.main(TestKnfCharm)
