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
    assert data.ready is True
    assert "karaf" not in json.dumps(raw)  # never the credentials themselves

    secret = next(s for s in out.secrets if s.label == "controller-credentials")
    assert secret.tracked_content == {"username": "karaf", "password": "karaf"}
    assert relation.id in secret.remote_grants
    assert data.credentials_secret == secret.id


def test_nothing_published_until_ready(ctx, kube, controller, oar_dir):
    controller.onos_up = False
    relation = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch")
    out = ctx.run(ctx.on.relation_joined(relation), make_state(oar_dir, relations={relation}))
    assert out.get_relation(relation.id).local_app_data == {}
