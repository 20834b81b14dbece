"""Every object the controller charm builds passes the Kubernetes schema or the CRD schema."""

import base64

import kubernetes_validate
import pytest

from l2sm_core.manifests import SPEC_HASH, common_labels, spec_hash
from l2sm_core.manifests import controller as objects
from l2sm_core.manifests.crds import validate_custom_object

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
