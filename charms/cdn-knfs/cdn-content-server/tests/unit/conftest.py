"""Fixtures: the content server's containers over a real content directory (Mounts), its
networks (the KNF library's FakeCluster and network_relation), an origin relation, and the
manifest job standing in for the jobs container's exec (ops.testing's Exec writes no files)."""

from __future__ import annotations

from pathlib import Path

import charm
import pytest
from ops import testing

from l2sm_core.cdn import content as manifests
from l2sm_knf.l2sm_network import FakeCluster, network_relation

APP = "cdn-content-server"
UNIT = f"{APP}/0"
ADDRESS = "10.0.2.10"
# OSM's controller (the oldest Juju the charm must run on) and the current LTS.
JUJU_VERSIONS = ("2.9.43", "3.6.4")

NGINX_EXECS = frozenset({testing.Exec(["nginx"], return_code=0)})


@pytest.fixture(params=JUJU_VERSIONS)
def juju_version(request) -> str:
    return request.param


@pytest.fixture
def ctx(juju_version):
    return testing.Context(charm.CdnContentServerCharm, app_name=APP, juju_version=juju_version)


@pytest.fixture
def cluster():
    fake = FakeCluster(APP, containers=("charm", "nginx", "jobs"))
    with fake.installed():
        yield fake


@pytest.fixture
def content(tmp_path) -> Path:
    """The `content` storage, as both workload containers mount it."""
    path = tmp_path / "content"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def manifest_job(monkeypatch, content) -> list[list[str]]:
    """The manifest job, run for real on the content directory; the command lines it got."""
    runs: list[list[str]] = []

    def write(_container, argv):
        runs.append(argv)
        manifests.write_manifest(content)

    monkeypatch.setattr(charm, "_write_manifest", write)
    return runs


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def containers(content: Path, *, connect: bool = True, nginx_execs=NGINX_EXECS):
    """nginx and jobs; what the charm writes into them is kept between runs (Mounts), as a
    pod's filesystem is."""
    root = content.parent
    mount = testing.Mount(location=charm.CONTENT_DIR, source=content)
    nginx = testing.Container(
        charm.NGINX,
        can_connect=connect,
        mounts={
            "content": mount,
            "etc": testing.Mount(location="/etc/nginx", source=_dir(root / "nginx-etc")),
        },
        execs=nginx_execs,
    )
    jobs = testing.Container(
        charm.JOBS,
        can_connect=connect,
        mounts={
            "content": mount,
            "status": testing.Mount(location=charm.STATUS_DIR, source=_dir(root / "jobs-status")),
        },
    )
    return nginx, jobs


def status_dir(content: Path) -> Path:
    """The jobs' status files, as the charm reads them."""
    return content.parent / "jobs-status"


def net_b(**kwargs) -> testing.Relation:
    """The network the origin serves on, assigning this unit ADDRESS."""
    return network_relation("net-b", "10.0.2.0/24", assignments={UNIT: f"{ADDRESS}/24"}, **kwargs)


def origin_relation(**kwargs) -> testing.Relation:
    return testing.Relation("origin", remote_app_name="cdn-cache", **kwargs)


def state(content: Path, *, relations=(), config=None, leader=True, connect=True, **kwargs) -> testing.State:
    return testing.State(
        leader=leader,
        relations=set(relations),
        config=config or {},
        containers=set(containers(content, connect=connect)),
        storages={testing.Storage("content")},
        model=testing.Model(name="cdn"),
        **kwargs,
    )


def joined(ctx, cluster, content, *, relations=(), config=None, leader=True) -> testing.State:
    """A unit on net-b with its address configured (the pods restarted with their interfaces)."""
    relations = [net_b(), *relations]
    out = ctx.run(ctx.on.config_changed(), state(content, relations=relations, config=config, leader=leader))
    cluster.restart_pods()
    return ctx.run(ctx.on.update_status(), out)
