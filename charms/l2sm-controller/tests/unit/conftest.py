"""Shared fixtures: a fake lightkube client, a real HTTP controller double, container states."""

from __future__ import annotations

import charm
import pytest
import workload
from ops import pebble, testing

from l2sm_charmlib import reconcile
from l2sm_core.manifests.crds import custom_resource_definitions
from l2sm_core.naming import device_id
from l2sm_testing import samples
from l2sm_testing.controller_server import FakeController
from l2sm_testing.fake_kube import FakeKube
from l2sm_testing.samples import NAD_CRD

NAMESPACE = "l2sm"
APP = "l2sm-controller"
OAR = b"PK\x03\x04 vnets-app-1.0.oar"


@pytest.fixture
def kube(monkeypatch):
    # Namespaced calls without a namespace land in the model's namespace, as in the pod.
    fake = FakeKube(default_namespace=NAMESPACE)
    fake.add(NAD_CRD)
    monkeypatch.setattr(reconcile, "Client", lambda **_: fake)
    return fake


@pytest.fixture
def crds_installed(kube):
    """The cluster after a first reconcile: the L2S-M kinds exist."""
    for crd in custom_resource_definitions(APP, NAMESPACE):
        kube.add(crd)
    return kube


@pytest.fixture
def controller(monkeypatch):
    fake = FakeController().start()
    fake.vnets_installed = False  # a fresh controller container: the charm installs the app
    monkeypatch.setattr(charm, "LOCAL_REST_URL", fake.url)
    monkeypatch.setattr(workload, "MANAGER_READYZ_URL", f"{fake.url}/readyz")
    monkeypatch.setattr(charm, "MANAGER_START_WAIT", 0.2)
    yield fake
    fake.stop()


@pytest.fixture
def ctx():
    return testing.Context(charm.L2smControllerCharm)


@pytest.fixture
def oar_dir(tmp_path):
    (tmp_path / "vnets-app-1.0.oar").write_bytes(OAR)
    return tmp_path


def controller_container(oar_dir, connect=True, with_archive=True, layers=None):
    mounts = {"onos": testing.Mount(location=workload.ONOS_HOME, source=oar_dir)} if with_archive else {}
    return testing.Container("controller", can_connect=connect, mounts=mounts, layers=layers or {})


def manager_container(ready=True, connect=True, layers=None, successes=1, running=True):
    checks = []
    if ready is not None:
        checks = [
            testing.CheckInfo(
                workload.MANAGER_CHECK,
                level=pebble.CheckLevel.READY,
                status=pebble.CheckStatus.UP if ready else pebble.CheckStatus.DOWN,
                successes=successes if ready else 0,
                failures=0 if ready else 3,
            )
        ]
        # Pebble reports checks only for a plan that has them: the manager is already running.
        layers = layers or {"manager": pebble.Layer(workload.manager_layer(NAMESPACE))}
    statuses = {"manager": pebble.ServiceStatus.ACTIVE} if layers and running else {}
    return testing.Container(
        "manager", can_connect=connect, check_infos=checks, layers=layers or {}, service_statuses=statuses
    )


def make_state(oar_dir, leader=True, **overrides):
    base = {
        "leader": leader,
        "model": testing.Model(name=NAMESPACE),
        "containers": {controller_container(oar_dir), manager_container()},
    }
    base.update(overrides)
    return testing.State(**base)


def l2network(name, namespace=NAMESPACE, labels=None, status=None, deleting=False):
    meta = {"name": name, "namespace": namespace, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-25T10:00:00Z"
    obj = {
        "apiVersion": "l2sm.l2sm.k8s.local/v1",
        "kind": "L2Network",
        "metadata": meta,
        "spec": {"type": "vnet"},
    }
    if status:
        obj["status"] = status
    return obj


def l2sm_pod(name, node, networks, veths, namespace="knfs", deleting=False, phase="Running"):
    nads = [f"l2sm-veth{v}" for v in veths]
    return samples.l2sm_pod(name, node, nads, networks, namespace, deleting=deleting, phase=phase)


def endpoint(node, port):
    return f"{device_id(node)}/{port}"
