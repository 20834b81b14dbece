"""Last (conftest orders it so): the core this session deployed goes, and with it everything
our charms labelled in its model (CRDs, webhook, switches, Services...)."""

from __future__ import annotations

import pytest

from . import cluster, helpers
from .conftest import CORE_CHARMS, Core


@pytest.mark.juju_teardown
def test_removing_the_core_leaves_no_labelled_object(core: Core, kubectl: list[str]) -> None:
    if not core.deployed:
        pytest.skip("the core is --l2sm-model's, not this session's: it stays")
    # The consumers removed their saas; Juju keeps an application whose offer has connections.
    connected: list[dict[str, str]] = []

    def disconnected() -> bool:
        connected[:] = [helpers.offers_connected(core.juju.status())]
        return not connected[0]

    try:
        helpers.wait_for("the core's offers without connections", disconnected, timeout=300, poll=10)
    except TimeoutError:
        raise AssertionError(f"offers still connected, the core cannot be removed: {connected[0]}") from None
    cluster.remove_and_check(core.juju, CORE_CHARMS, kubectl)
