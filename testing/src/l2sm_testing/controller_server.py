"""A real HTTP server speaking the L2S-M controller's REST API, for tests.

It is the lab's own REST front (`l2sm_lab.vnets_api.VnetsFront`, where upstream's semantics
are written down), so the double the unit tests drive and the one the lab's controller
serves cannot drift apart. Here it only listens on 127.0.0.1, on a free port.
"""

from __future__ import annotations

from l2sm_lab.vnets_api import APPS, OPENFLOW_APP, VNETS, VnetsFront

__all__ = ["APPS", "OPENFLOW_APP", "VNETS", "FakeController"]


class FakeController(VnetsFront):
    def __init__(self, username: str = "karaf", password: str = "karaf"):
        super().__init__(username, password)
