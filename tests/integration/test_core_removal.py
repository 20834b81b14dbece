"""Last (conftest orders it so): the core this session deployed goes, and with it everything
our charms labelled in its model (CRDs, webhook, switches, Services...)."""

from __future__ import annotations

import pytest

from . import cluster
from .conftest import CORE_CHARMS, Core


@pytest.mark.juju_teardown
def test_removing_the_core_leaves_no_labelled_object(core: Core, kubectl: list[str]) -> None:
    if not core.deployed:
        pytest.skip("the core is --l2sm-model's, not this session's: it stays")
    cluster.remove_and_check(core.juju, CORE_CHARMS, kubectl)
