"""Fixtures: a fake lightkube client with nodes, and the controller's relation data."""

from __future__ import annotations

import json

import charm
import pytest
from ops import testing

from l2sm_controlplane.crds import custom_resource_definitions
from l2sm_core.manifests import INSTANCE, MANAGED_BY, MANAGED_BY_VALUE
from l2sm_core.manifests import MODEL as MODEL_LABEL
from l2sm_core.topology import switch_pod_name
from l2sm_testing import samples
from l2sm_testing.fake_kube import FakeKube
from l2sm_testing.samples import CONTROLLER_APP_DATA as CONTROLLER_DATA
from l2sm_testing.samples import MULTUS_CRD

APP = "l2sm-switch"
NAMESPACE = "l2sm"  # the controller's
MODEL = "switch-model"  # the switch's own Juju model (and namespace)


def node(name, unschedulable=False, os="linux"):
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/os": os}},
        "spec": {"unschedulable": unschedulable},
    }


def replica_set(overlay, node_name, ready=1, owner_uid=None):
    owners = [{"apiVersion": "l2sm.l2sm.k8s.local/v1", "kind": "Overlay", "name": overlay, "uid": owner_uid}]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": switch_pod_name(overlay, node_name),
            "namespace": NAMESPACE,
            "ownerReferences": owners if owner_uid else [],
        },
        "spec": {
            "selector": {"matchLabels": {"app": switch_pod_name(overlay, node_name)}},
            "template": {
                "metadata": {"labels": {"app": switch_pod_name(overlay, node_name)}},
                "spec": {"containers": [{"name": "l2sm-switch", "image": "alexdecb/talpa:1.3.8"}]},
            },
        },
        "status": {"replicas": 1, "readyReplicas": ready},
    }


def nad(overlay, port, labels=None):
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {
            "name": f"{overlay}-veth{port}",
            "namespace": NAMESPACE,
            "labels": {"app": "l2sm", "overlay": overlay, **(labels or {})},
        },
        "spec": {"config": "{}"},
    }


def knf_pod(name, node_name, veths, overlay=APP, deleting=False):
    nads = [f"{overlay}-veth{v}" for v in veths]
    return samples.l2sm_pod(
        name, node_name, nads, namespace="cdn", attachment_namespace=NAMESPACE, deleting=deleting
    )


@pytest.fixture
def kube(monkeypatch):
    fake = FakeKube(default_namespace=MODEL)
    # What l2sm-controller and Multus installed.
    for crd in custom_resource_definitions("l2sm-controller", NAMESPACE):
        fake.add(crd)
    fake.add(MULTUS_CRD)
    for name in ("node-a", "node-b", "node-c"):
        fake.add(node(name))
    fake.add(node("cordoned", unschedulable=True))
    fake.add(node("win-1", os="windows"))
    monkeypatch.setattr("l2sm_knf.kube.Client", lambda **_: fake)
    monkeypatch.setattr(charm, "RECREATE_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(charm, "RECREATE_POLL_SECONDS", 0.05)
    monkeypatch.setattr(charm, "ATTACHMENT_WAIT_SECONDS", 0.1)
    return fake


# OSM's controller (the oldest Juju the charm must run on) and the current LTS.
JUJU_VERSIONS = ("2.9.43", "3.6.4")


@pytest.fixture(params=JUJU_VERSIONS)
def juju_version(request) -> str:
    return request.param


@pytest.fixture
def ctx(juju_version):
    return testing.Context(charm.L2smSwitchCharm, juju_version=juju_version)


def integrate_hint(juju_version: str, app: str = APP) -> str:
    """How the charm tells the operator to relate it to the controller, in that Juju's dialect."""
    verb = "relate" if juju_version.startswith("2.") else "integrate"
    return f"integrate with l2sm-controller: juju {verb} {app}:controller l2sm-controller"


def controller_relation(data=None):
    raw = {k: json.dumps(v) for k, v in (CONTROLLER_DATA if data is None else data).items()}
    return testing.Relation("controller", remote_app_name="l2sm-controller", remote_app_data=raw)


def make_state(leader=True, config=None, relation=True, data=None, **overrides):
    relations = overrides.pop("relations", None)
    if relations is None:
        relations = {controller_relation(data)} if relation else set()
    return testing.State(
        leader=leader,
        model=testing.Model(name=MODEL),
        config=config or {},
        relations=relations,
        **overrides,
    )


def foreign_overlay(name, namespace=NAMESPACE, app="l2sm-switch-b", model="other-model", labels=None):
    """An Overlay another application (or a person, with labels={}) made."""
    if labels is None:
        labels = {MANAGED_BY: MANAGED_BY_VALUE, INSTANCE: app, MODEL_LABEL: model}
    return {
        "apiVersion": "l2sm.l2sm.k8s.local/v1",
        "kind": "Overlay",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"provider": {"name": "l2sm-controller"}, "topology": {"nodes": ["node-a"]}},
    }


def cluster_snapshot(kube):
    """Everything in the fake cluster and every write so far, to compare before and after."""
    return json.dumps(sorted(kube.objects.items()), sort_keys=True, default=str), list(kube.writes)


@pytest.fixture
def serving(ctx, kube):
    """A running fabric: the Overlay, its attachments marked for the pod holding one. Gives
    the cluster's snapshot, to compare with after a refusal."""
    ctx.run(ctx.on.config_changed(), make_state())
    kube.add(nad(APP, 1))
    kube.add(nad(APP, 2))
    kube.add(knf_pod("cache-0", "node-a", [1]))
    ctx.run(ctx.on.update_status(), make_state())
    labels = kube.find("NetworkAttachmentDefinition", f"{APP}-veth1", NAMESPACE)["metadata"]["labels"]
    assert labels["used-node-a"] == "true"
    return cluster_snapshot(kube)
