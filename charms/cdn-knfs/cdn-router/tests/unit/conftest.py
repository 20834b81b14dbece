"""Fixtures: the router on two networks (clients, caches) through the KNF library's testing
helpers, its router container with nft mocked, and forwarding read from a file."""

from __future__ import annotations

import dataclasses

import charm
import pytest
from ops import testing

from l2sm_knf.l2sm_network import FakeCluster, network_relation

APP = "cdn-router"
UNIT = f"{APP}/0"
# OSM's controller (the oldest Juju the charm must run on) and the current LTS.
JUJU_VERSIONS = ("2.9.43", "3.6.4")
NFT_OK = testing.Exec(["nft"], return_code=0)


@pytest.fixture(params=JUJU_VERSIONS)
def juju_version(request) -> str:
    return request.param


@pytest.fixture
def ctx(juju_version) -> testing.Context:
    return testing.Context(charm.CdnRouterCharm, app_name=APP, juju_version=juju_version)


@pytest.fixture(autouse=True)
def forwarding(tmp_path, monkeypatch):
    """The pod's ip_forward, on unless a test writes 0."""
    path = tmp_path / "ip_forward"
    path.write_text("1\n")
    monkeypatch.setattr("l2sm_knf.l2sm_network.IP_FORWARD_PATH", str(path))
    return path


@pytest.fixture
def cluster():
    cluster = FakeCluster(APP, containers=("charm", "router"))
    with cluster.installed():
        yield cluster


@pytest.fixture
def etc(tmp_path):
    """The router container's /etc/cdn-router, kept across runs as the container keeps it."""
    path = tmp_path / "etc-cdn-router"
    path.mkdir()
    return path


def router_container(etc, execs=(NFT_OK,), **kwargs) -> testing.Container:
    mounts = {"etc": testing.Mount(location="/etc/cdn-router", source=etc)}
    return testing.Container("router", can_connect=True, execs=set(execs), mounts=mounts, **kwargs)


def nft_runs(ctx: testing.Context) -> list[str]:
    """The rulesets `nft -f -` was given in the router container, in order (and forgets them)."""
    runs = [e.stdin for e in ctx.exec_history.pop("router", []) if e.command == ["nft", "-f", "-"]]
    return [r if isinstance(r, str) else "" for r in runs]


def settle(ctx, cluster, etc, *, config=None, peer=None, leader=True, relations=None, **state):
    """The router joined to both networks, its pod restarted with net1/net2, the ruleset loaded."""
    rels = set(relations if relations is not None else networks())
    rels.add(peer if peer is not None else testing.PeerRelation("router-peers"))
    start = testing.State(
        leader=True,  # the leader patches the pod template; `leader` is for what follows
        relations=rels,
        containers={router_container(etc)},
        config={"addresses": ADDRESSES, **(config or {})},
        **state,
    )
    out = ctx.run(ctx.on.config_changed(), start)
    cluster.restart_pods()
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(out, leader=leader))
    nft_runs(ctx)
    return out


def networks(unit: str = UNIT):
    """clients 10.0.1.0/24 and caches 10.0.2.0/24, the router holding .1 on each."""
    return (
        network_relation("clients", "10.0.1.0/24", assignments={unit: "10.0.1.1/24"}),
        network_relation("caches", "10.0.2.0/24", assignments={unit: "10.0.2.1/24"}),
    )


ADDRESSES = "clients=10.0.1.1/24,caches=10.0.2.1/24"
