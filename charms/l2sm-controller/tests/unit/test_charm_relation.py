"""The l2sm-controller interface: address, ports, readiness, and the credentials only as a
reference (a Juju secret id, or a Kubernetes Secret on Juju 2.9)."""

import base64
import json
import logging

import charm
import pytest
from conftest import APP, JUJU_VERSIONS, NAMESPACE, JujuContext, make_state, stored_secret
from ops import testing

from l2sm_charmlib.l2sm_controller import ControllerProviderAppData
from l2sm_core.manifests import common_labels, identity

CREDENTIALS = {"username": "karaf", "password": "karaf"}


def _published(out, relation) -> ControllerProviderAppData:
    raw = out.get_relation(relation.id).local_app_data
    assert "karaf" not in json.dumps(raw)  # never the credentials themselves
    return ControllerProviderAppData(**{k: json.loads(v) for k, v in raw.items()})


def test_publishes_address_and_secret(ctx, kube, controller, oar_dir, caplog):
    caplog.set_level(logging.DEBUG)
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    out = ctx.run(ctx.on.relation_joined(relation), make_state(oar_dir, relations={relation}))

    data = _published(out, relation)
    cluster_ip = kube.find("Service", f"{APP}-sdn", NAMESPACE)["spec"]["clusterIP"]
    assert data.cluster_ip == cluster_ip
    assert data.host == f"{APP}-sdn.{NAMESPACE}.svc.cluster.local"
    assert data.rest_url == f"http://{cluster_ip}:8181"
    assert data.openflow_port == 6633
    assert data.namespace == NAMESPACE
    assert data.ready is True
    assert stored_secret(ctx, kube, out, "controller-credentials") == CREDENTIALS
    if ctx.has_secrets:
        secret = next(s for s in out.secrets if s.label == "controller-credentials")
        assert relation.id in secret.remote_grants
        assert data.credentials_secret == secret.id
        assert data.kubernetes_secret is None
        assert kube.kinds("Secret") == []
    else:
        # Juju 2.9: one Secret the charm owns, named in the relation; no Juju secret exists.
        assert not out.secrets
        assert data.credentials_secret == f"kubernetes:{NAMESPACE}/{APP}-secrets"
        assert data.kubernetes_secret == (NAMESPACE, f"{APP}-secrets")
        (secret,) = kube.kinds("Secret")
        assert secret["metadata"]["labels"] == common_labels(APP, NAMESPACE)
        username = base64.b64decode(secret["data"]["controller-credentials.username"]).decode()
        assert username == "karaf"
        assert "BEGIN CERTIFICATE" in stored_secret(ctx, kube, out, "webhook-tls")["cert"]
    assert "karaf" not in caplog.text and "PRIVATE KEY" not in caplog.text  # never logged


def test_second_publish_writes_nothing(ctx, kube, controller, oar_dir):
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    out = ctx.run(ctx.on.relation_joined(relation), make_state(oar_dir, relations={relation}))
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert kube.writes == writes
    assert again.get_relation(relation.id).local_app_data == out.get_relation(relation.id).local_app_data
    assert {s.id: s.latest_content for s in again.secrets} == {s.id: s.latest_content for s in out.secrets}


def test_not_ready_is_published_as_such(ctx, kube, controller, oar_dir):
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    out = ctx.run(ctx.on.relation_joined(relation), make_state(oar_dir, relations={relation}))
    assert json.loads(out.get_relation(relation.id).local_app_data["ready"]) is True

    controller.onos_up = False  # the controller went down
    out = ctx.run(ctx.on.update_status(), out)
    assert json.loads(out.get_relation(relation.id).local_app_data["ready"]) is False


def test_nothing_published_without_trust(ctx, kube, controller, oar_dir):
    kube.forbidden = True
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    out = ctx.run(ctx.on.relation_changed(relation), make_state(oar_dir, relations={relation}))
    assert out.get_relation(relation.id).local_app_data == {}
    assert not out.secrets


# -- a controller whose Juju is upgraded from 2.9 ---------------------------------------------

UPGRADED_TO = [v for v in JUJU_VERSIONS if JujuContext(charm.L2smControllerCharm, juju_version=v).has_secrets]


@pytest.mark.parametrize("juju_version", UPGRADED_TO)
def test_upgrade_from_29_moves_the_secrets_into_juju(juju_version, kube, controller, oar_dir):
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    old = JujuContext(charm.L2smControllerCharm, juju_version="2.9.43")
    before = old.run(old.on.relation_joined(relation), make_state(oar_dir, relations={relation}))
    assert _published(before, relation).kubernetes_secret == (NAMESPACE, f"{APP}-secrets")
    hook = kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods")
    tls_before = stored_secret(old, kube, before, "webhook-tls")

    new = JujuContext(charm.L2smControllerCharm, juju_version=juju_version)
    after = new.run(new.on.upgrade_charm(), before)

    # The same CA and certificate, now in Juju secrets: the webhook and the manager keep them.
    assert stored_secret(new, kube, after, "webhook-tls") == tls_before
    assert stored_secret(new, kube, after, "controller-credentials") == CREDENTIALS
    assert kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods") == hook
    data = _published(after, relation)
    secret = next(s for s in after.secrets if s.label == "controller-credentials")
    assert data.credentials_secret == secret.id and relation.id in secret.remote_grants
    # Named nowhere any more, the Kubernetes Secret goes.
    assert kube.kinds("Secret") == []
    assert after.unit_status.name == "active"


@pytest.mark.parametrize("juju_version", UPGRADED_TO)
def test_upgrade_keeps_the_kubernetes_secret_until_all_of_it_moved(juju_version, kube, controller, oar_dir):
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    old = JujuContext(charm.L2smControllerCharm, juju_version="2.9.43")
    before = old.run(old.on.relation_joined(relation), make_state(oar_dir, relations={relation}))
    tls_before = stored_secret(old, kube, before, "webhook-tls")
    # Multus went away: the reconcile stops before the webhook certificate is read.
    kube.objects.pop(("CustomResourceDefinition", "", "network-attachment-definitions.k8s.cni.cncf.io"))

    new = JujuContext(charm.L2smControllerCharm, juju_version=juju_version)
    after = new.run(new.on.upgrade_charm(), before)
    assert after.unit_status.name == "blocked"
    assert {s.label for s in after.secrets} == {"controller-credentials"}
    assert _published(after, relation).credentials_secret.startswith("secret:")
    # The certificate lives only in the Kubernetes Secret yet: it stays.
    assert stored_secret(old, kube, after, "webhook-tls") == tls_before


def _ipv6_service(kube):
    """The SDN Service as an IPv6-only cluster gives it: an address the switches cannot use."""
    kube.add(
        {
            "apiVersion": "v1",
            "kind": "Service",
            # The charm's own Service (its labels), given an address it cannot publish.
            "metadata": {"name": f"{APP}-sdn", "namespace": NAMESPACE, "labels": identity(APP, NAMESPACE)},
            "spec": {"clusterIP": "fd00::10"},
        }
    )


def test_an_ipv6_service_address_blocks_and_publishes_nothing(ctx, kube, controller, oar_dir, caplog):
    _ipv6_service(kube)
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    state = make_state(oar_dir, relations={relation})
    out = ctx.run(ctx.on.relation_joined(relation), state)
    assert out.get_relation(relation.id).local_app_data == {}
    assert out.unit_status.name == "blocked"
    message = out.unit_status.message
    assert "field 'cluster-ip': 'fd00::10' is not an IPv4 address" in message, message
    assert "IPv4" in message and "dual-stack" in message
    # The status stays so on dispatches that do not reconcile (an action).
    assert ctx.run(ctx.on.action("controller-status"), out).unit_status.message == message
    after = ctx.run(ctx.on.update_status(), out)
    assert after.unit_status.message == message
    assert after.get_relation(relation.id).local_app_data == {}


def test_an_earlier_refusal_keeps_its_status_over_the_publish_one(ctx, kube, controller, oar_dir):
    _ipv6_service(kube)
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    out = ctx.run(ctx.on.relation_joined(relation), make_state(oar_dir, relations={relation}))
    # Multus gone and an unusable address: the first cause the reconcile met is shown.
    kube.objects.pop(("CustomResourceDefinition", "", "network-attachment-definitions.k8s.cni.cncf.io"))
    after = ctx.run(ctx.on.update_status(), out)
    assert after.unit_status.message.startswith("Multus not found")
    assert after.get_relation(relation.id).local_app_data == {}


def test_any_field_the_interface_refuses_blocks_and_publishes_nothing(
    ctx, kube, controller, oar_dir, monkeypatch
):
    from l2sm_controlplane import objects

    monkeypatch.setattr(objects, "OPENFLOW_PORT", 0)  # as if a revision got it wrong
    relations = {testing.Relation("l2sm-controller", remote_app_name=app) for app in ("sw", "net")}
    out = ctx.run(ctx.on.update_status(), make_state(oar_dir, relations=relations))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(
        "relation l2sm-controller: nothing published: field 'openflow-port'"
    )
    assert all(r.local_app_data == {} for r in out.relations)
