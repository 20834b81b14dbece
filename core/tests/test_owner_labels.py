"""Who owns an L2Network, and whether an object is going: read the same by every charm."""

import pytest

from l2sm_core.manifests import OWNER, OWNER_KIND, deleting, owner_of


def _obj(labels=None, **meta):
    return {"kind": "L2Network", "metadata": {"name": "net-a", "labels": labels or {}, **meta}}


@pytest.mark.parametrize(
    ("labels", "owner"),
    [
        ({OWNER_KIND: "application", OWNER: "cdn-net"}, "l2sm-network application 'cdn-net'"),
        ({OWNER_KIND: "action", OWNER: "l2sm-controller"}, "create-network action of 'l2sm-controller'"),
        ({OWNER_KIND: "application"}, "l2sm-network application '?'"),
        ({}, "none in Juju, made with helm or kubectl?"),
        # A kind neither charm writes is no owner either: nothing in Juju answers for it.
        ({OWNER_KIND: "someone", OWNER: "x"}, "none in Juju, made with helm or kubectl?"),
    ],
)
def test_owner_of(labels, owner):
    assert owner_of(_obj(labels)) == owner


@pytest.mark.parametrize("odd", [{}, {"metadata": None}, {"metadata": {"labels": None}}, None, "net-a"])
def test_owner_of_an_odd_object_is_no_owner(odd):
    assert owner_of(odd) == "none in Juju, made with helm or kubectl?"
    assert deleting(odd) is False


def test_an_owner_name_is_shown_clipped():
    owner = owner_of(_obj({OWNER_KIND: "action", OWNER: "x" * 500}))
    assert len(owner) < 150


def test_deleting():
    assert deleting(_obj(deletionTimestamp="2026-11-25T10:00:00Z")) is True
    assert deleting(_obj()) is False
    assert deleting(_obj(deletionTimestamp=None)) is False
