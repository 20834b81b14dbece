"""Every object the controller charm builds passes the Kubernetes schema or the CRD schema."""

import base64

import kubernetes_validate
import pytest

from l2sm_controlplane import objects
from l2sm_controlplane.crds import validate_custom_object
from l2sm_core.manifests import SPEC_HASH, common_labels, spec_hash

K8S = "1.31"
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def built():
    return [
        objects.sdn_service("l2sm-controller", "l2sm", "l2sm-controller-0"),
        objects.webhook_service("l2sm-controller", "l2sm", "l2sm-controller-0"),
        objects.pod_webhook("l2sm-controller", "l2sm", CA),
    ]


@pytest.mark.parametrize("obj", built(), ids=lambda o: o["kind"] + "/" + o["metadata"]["name"])
def test_builtin_kinds_validate(obj):
    kubernetes_validate.validate(obj, K8S, strict=True)
    assert obj["metadata"]["labels"] == common_labels("l2sm-controller", "l2sm")
    assert obj["metadata"]["annotations"][SPEC_HASH] == spec_hash(obj)


def test_invalid_object_is_caught():
    bad = objects.sdn_service("l2sm-controller", "l2sm", "l2sm-controller-0")
    bad["spec"]["ports"][0]["port"] = "six-six-three-three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S, strict=True)


def test_webhook_is_narrow_and_points_at_our_service():
    hook = objects.pod_webhook("l2sm-controller", "l2sm", CA)["webhooks"][0]
    assert hook["objectSelector"] == {"matchLabels": {"l2sm": "true"}}
    assert hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["clientConfig"]["service"] == {
        "name": "l2sm-controller-webhook",
        "namespace": "l2sm",
        "path": "/mutate-v1-pod",
        "port": 443,
    }
    assert base64.b64decode(hook["clientConfig"]["caBundle"]).decode() == CA


def test_spec_hash_follows_content():
    one = objects.sdn_service("a", "m", "a-0")
    assert spec_hash(one) == spec_hash(objects.sdn_service("a", "m", "a-0"))
    assert spec_hash(one) != spec_hash(objects.sdn_service("a", "m", "a-1"))


@pytest.mark.parametrize("cidr", [None, "10.0.1.0/24"])
def test_action_network_matches_crd(cidr):
    obj = objects.action_network("l2sm-controller", "l2sm", "net-a", cidr)
    validate_custom_object(obj)
    assert obj["metadata"]["labels"]["l2sm-charms.juju.is/owner-kind"] == "action"


def test_openflow_and_rest_stay_routed_while_the_pod_is_not_ready():
    # Readiness follows the manager (for the webhook); switches must not lose ONOS meanwhile.
    assert objects.sdn_service("a", "m", "a-0")["spec"]["publishNotReadyAddresses"] is True
    assert "publishNotReadyAddresses" not in objects.webhook_service("a", "m", "a-0")["spec"]


# -- issue 9: the Secret holding the charm's secrets on Juju 2.9 -----------------------------

ENTRIES = {
    "webhook-tls": {"ca-cert": CA, "key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"},
    "controller-credentials": {"username": "karaf", "password": "karaf"},
}


def test_charm_secret_validates_and_round_trips():
    secret = objects.charm_secret("l2sm-controller", "l2sm", ENTRIES)
    kubernetes_validate.validate(secret, K8S, strict=True)
    assert secret["metadata"] == {
        "name": objects.charm_secret_name("l2sm-controller"),
        "namespace": "l2sm",
        "labels": common_labels("l2sm-controller", "l2sm"),
    }
    assert SPEC_HASH not in str(secret)  # no digest of key material anywhere
    assert sorted(secret["data"]) == [
        "controller-credentials.password",
        "controller-credentials.username",
        "webhook-tls.ca-cert",
        "webhook-tls.key",
    ]
    assert "karaf" not in str(secret)  # base64, as the API wants
    assert objects.charm_secret_entries(secret) == ENTRIES


def test_charm_secret_entries_ignore_what_is_not_ours():
    secret = objects.charm_secret("a", "m", ENTRIES)
    for foreign in ("token", ".hidden", "a..b", "tls.crt."):  # not `<label>.<key>`
        secret["data"][foreign] = base64.b64encode(b"x").decode()
    assert objects.charm_secret_entries(secret) == ENTRIES
    assert objects.charm_secret_entries(None) == {}
    assert objects.charm_secret_entries({"metadata": {}}) == {}


@pytest.mark.parametrize(
    "entries", [{"a.b": {"k": "v"}}, {"tls": {"a.b": "v"}}, {"": {"k": "v"}}, {"t": {"": "v"}}]
)
def test_charm_secret_refuses_labels_and_keys_it_could_not_read_back(entries):
    with pytest.raises(ValueError, match="letters, digits"):
        objects.charm_secret("a", "m", entries)
