"""The l2sm-controller interface: address, ports, readiness, credentials as a secret id."""

import json

from conftest import APP, NAMESPACE, make_state
from ops import testing

from l2sm_core.interfaces import ControllerProviderAppData


def test_publishes_address_and_secret(ctx, kube, controller, oar_dir):
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    out = ctx.run(ctx.on.relation_joined(relation), make_state(oar_dir, relations={relation}))

    raw = out.get_relation(relation.id).local_app_data
    data = ControllerProviderAppData(**{k: json.loads(v) for k, v in raw.items()})
    cluster_ip = kube.find("Service", f"{APP}-sdn", NAMESPACE)["spec"]["clusterIP"]
    assert data.cluster_ip == cluster_ip
    assert data.host == f"{APP}-sdn.{NAMESPACE}.svc.cluster.local"
    assert data.rest_url == f"http://{cluster_ip}:8181"
    assert data.openflow_port == 6633
    assert data.namespace == NAMESPACE
    assert data.ready is True
    assert "karaf" not in json.dumps(raw)  # never the credentials themselves

    secret = next(s for s in out.secrets if s.label == "controller-credentials")
    assert secret.tracked_content == {"username": "karaf", "password": "karaf"}
    assert relation.id in secret.remote_grants
    assert data.credentials_secret == secret.id


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
