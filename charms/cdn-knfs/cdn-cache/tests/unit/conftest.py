"""Fixtures: the cache's containers over a real content directory, its origin relation, a
tls-certificates provider built from the library's own relation data format, and the
KNF library's FakeCluster."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import charm
import charmlibs.interfaces.tls_certificates as tls
import pytest
from ops import testing

from l2sm_knf.l2sm_network import FakeCluster

APP = "cdn-cache"
UNIT = f"{APP}/0"
ORIGIN_URLS = ["http://10.0.2.10:80/", "http://10.0.9.10:80/"]
# OSM's controller (the oldest Juju the charm must run on) and the current LTS.
JUJU_VERSIONS = ("2.9.43", "3.6.4")


@pytest.fixture(params=JUJU_VERSIONS)
def juju_version(request) -> str:
    return request.param


@pytest.fixture
def ctx(juju_version):
    return testing.Context(charm.CdnCacheCharm, app_name=APP, juju_version=juju_version)


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


NGINX_EXECS = frozenset({testing.Exec(["nginx"], return_code=0)})


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def containers(content: Path, *, connect: bool = True):
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
        execs=NGINX_EXECS,
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


def origin_relation(data=None, **kwargs) -> testing.Relation:
    """The origin relation, the content server's app data as it publishes it (canonical JSON)."""
    if data is None:
        data = {"urls": json.dumps(ORIGIN_URLS), "manifest": json.dumps("manifest.json")}
    return testing.Relation("origin", remote_app_name="cdn-content-server", remote_app_data=data, **kwargs)


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


def integrate_hint(juju_version: str) -> str:
    verb = "relate" if juju_version.startswith("2.") else "integrate"
    return (
        "no origin: integrate with a content server "
        f"(juju {verb} {APP}:origin cdn-content-server) or set option 'origin-url'"
    )


class Authority:
    """A tls-certificates provider: signs what the requirer asked for in its unit databag and
    answers in the provider's app databag format (the library's _ProviderApplicationData)."""

    def __init__(self):
        self.key = tls.PrivateKey.generate()
        self.ca = tls.Certificate.generate_self_signed_ca(
            attributes=tls.CertificateRequestAttributes(common_name="test-ca", is_ca=True),
            private_key=self.key,
            validity=timedelta(days=30),
        )

    def answer(self, requirer_unit_data: dict[str, str], validity=timedelta(days=10)) -> dict[str, str]:
        requests = json.loads(requirer_unit_data["certificate_signing_requests"])
        certificates = []
        for request in requests:
            csr = tls.CertificateSigningRequest.from_string(request["certificate_signing_request"])
            certificate = tls.Certificate.generate(
                csr=csr, ca=self.ca, ca_private_key=self.key, validity=validity
            )
            certificates.append(
                {
                    "ca": str(self.ca),
                    "certificate_signing_request": str(csr),
                    "certificate": str(certificate),
                    "chain": [str(certificate), str(self.ca)],
                }
            )
        return {"certificates": json.dumps(certificates)}
