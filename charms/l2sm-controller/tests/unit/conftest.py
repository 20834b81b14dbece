"""Shared fixtures: a fake lightkube client, a real HTTP controller double, container states."""

from __future__ import annotations

import dataclasses

import charm
import ops
import pytest
import workload
from ops import pebble, testing

from l2sm_controlplane.crds import custom_resource_definitions
from l2sm_controlplane.objects import charm_secret, charm_secret_entries, charm_secret_name
from l2sm_core.naming import device_id
from l2sm_testing import samples
from l2sm_testing.controller_server import FakeController
from l2sm_testing.fake_kube import FakeKube
from l2sm_testing.samples import MULTUS_CRD

NAMESPACE = "l2sm"
APP = "l2sm-controller"
OAR = b"PK\x03\x04 vnets-app-1.0.oar"


@pytest.fixture
def kube(monkeypatch):
    # Namespaced calls without a namespace land in the model's namespace, as in the pod.
    fake = FakeKube(default_namespace=NAMESPACE)
    fake.add(MULTUS_CRD)
    monkeypatch.setattr("l2sm_knf.kube.Client", lambda **_: fake)
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


# OSM's controller, and the LTS standalone users run: every test runs under both.
JUJU_VERSIONS = ("2.9.43", "3.6.4")


class JujuContext(testing.Context):
    """A Context that also does what ops.testing leaves to the test: on Juju 2.9 no Pebble
    check event is ever emitted (they came in 3.6), and its Pebble (1.1) counts no check
    successes (ops reads None). Under 3.6 the tests' check infos count successes, as the
    Pebble 1.26 of recent 3.6 releases and of 4.0 does (Pebble counts them from 1.23);
    earlier 3.6 releases count none, which is the 2.9 path."""

    @property
    def has_secrets(self) -> bool:
        return ops.JujuVersion(self.juju_version).has_secrets

    @property
    def has_check_events(self) -> bool:
        return ops.JujuVersion(self.juju_version) >= "3.6"

    def run(self, event, state):
        if not self.has_check_events and "pebble_check" in getattr(event, "name", ""):
            raise AssertionError(f"Juju {self.juju_version} never emits {event.name}")
        if ops.JujuVersion(self.juju_version).major < 3:
            state, event = _without_check_successes(state, event)
        return super().run(event, state)

    def juju_run(self, unit: str, action: str) -> str:
        """The command that runs an action, as this Juju's CLI spells it."""
        if ops.JujuVersion(self.juju_version).major < 3:
            return f"juju run-action {unit} {action} --wait"
        return f"juju run {unit} {action}"


def _without_check_successes(state, event):
    """The state as the Pebble of Juju 2.9 reports it (and the event, if it names a container)."""
    containers = set()
    for container in state.containers:
        infos = {dataclasses.replace(info, successes=None) for info in container.check_infos}
        changed = dataclasses.replace(container, check_infos=infos)
        containers.add(changed)
        if getattr(event, "container", None) == container:
            event = dataclasses.replace(event, container=changed)
    return dataclasses.replace(state, containers=containers), event


@pytest.fixture(params=JUJU_VERSIONS)
def juju_version(request):
    return request.param


@pytest.fixture
def ctx(juju_version):
    return JujuContext(charm.L2smControllerCharm, juju_version=juju_version)


def stored_secret(ctx, kube, state, label):
    """What the charm keeps under `label`: a Juju secret, or its entry in the charm's
    Kubernetes Secret where Juju has no secrets."""
    if ctx.has_secrets:
        secret = next((s for s in state.secrets if s.label == label), None)
        return None if secret is None else secret.latest_content
    return charm_secret_entries(kube.find("Secret", charm_secret_name(APP), NAMESPACE)).get(label)


def with_stored_secret(ctx, kube, state, label, content):
    """`state` with `label` already stored, where this Juju keeps it."""
    if ctx.has_secrets:
        secret = testing.Secret(tracked_content=content, label=label, owner="app")
        return dataclasses.replace(state, secrets={*state.secrets, secret})
    entries = charm_secret_entries(kube.find("Secret", charm_secret_name(APP), NAMESPACE))
    kube.add(charm_secret(APP, NAMESPACE, {**entries, label: content}))
    return state


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
