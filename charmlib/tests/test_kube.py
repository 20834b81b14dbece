import pytest
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Service

from l2sm_charmlib.kube import L2Network
from l2sm_controlplane.crds import custom_resource_definitions
from l2sm_controlplane.objects import action_network, sdn_service
from l2sm_knf.kube import Kube, KubeForbidden, KubeNotFound
from l2sm_testing.fake_kube import FakeKube, api_error


@pytest.fixture
def fake():
    return FakeKube()


def test_apply_only_on_change(fake):
    kube = Kube(fake, "test-manager")
    assert kube.apply(sdn_service("a", "m", "a-0")) is True
    assert kube.apply(sdn_service("a", "m", "a-0")) is False
    assert kube.apply(sdn_service("a", "m", "a-1")) is True
    assert fake.field_managers == {"test-manager"}
    assert kube.get(Service, "a-sdn", "m")["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == "a-1"


def test_unknown_kind_has_no_objects(fake):
    # Before the CRDs exist the API server answers 404 for the whole kind.
    kube = Kube(fake, "t")
    assert kube.list(L2Network) == []
    # A write names what is missing, so an action can fail with it instead of a traceback.
    with pytest.raises(KubeNotFound, match="l2sm-controller installs the L2S-M kinds"):
        kube.apply(action_network("a", "m", "net-a", None))
    with pytest.raises(KubeNotFound, match="not in the cluster"):
        kube.merge_labels(L2Network, "net-a", "m", {"x": "y"})


def test_get_list_delete(fake):
    kube = Kube(fake, "t")
    for crd in custom_resource_definitions("a", "m"):
        kube.apply(crd)
    assert kube.get(Service, "missing", "m") is None
    kube.apply(action_network("a", "m", "net-a", None))
    kube.apply(action_network("a", "other", "net-b", None))
    # No namespace: every namespace, not the client's own (lightkube's default).
    assert [n["metadata"]["name"] for n in kube.list(L2Network)] == ["net-a", "net-b"]
    assert fake.list(L2Network) == []  # what the bare client would have answered here
    assert [n["metadata"]["name"] for n in kube.list(L2Network, namespace="other")] == ["net-b"]
    assert kube.list(L2Network, labels={"l2sm-charms.juju.is/owner": "nobody"}) == []
    assert kube.delete(L2Network, "net-a", "m") is True
    assert kube.delete(L2Network, "net-a", "m") is False


def test_forbidden_is_typed(fake):
    kube = Kube(fake, "t")
    fake.forbidden = True
    for call in (
        lambda: kube.get(Service, "x", "m"),
        lambda: kube.list(L2Network),
        lambda: kube.apply(sdn_service("a", "m", "a-0")),
        lambda: kube.delete(Service, "x", "m"),
    ):
        with pytest.raises(KubeForbidden):
            call()


def test_other_errors_propagate(fake, monkeypatch):
    kube = Kube(fake, "t")

    def boom(*_, **__):
        raise api_error(500, "etcd is unhappy")

    monkeypatch.setattr(fake, "get", boom)
    monkeypatch.setattr(fake, "delete", boom)
    with pytest.raises(ApiError):
        kube.get(Service, "x", "m")
    with pytest.raises(ApiError):
        kube.delete(Service, "x", "m")


def test_remove_finalizer_keeps_the_others_and_finishes_a_deletion(fake):
    kube = Kube(fake, "t")
    for crd in custom_resource_definitions("a", "m"):
        kube.apply(crd)
    kube.apply(action_network("a", "m", "net-a", None))
    kube.apply(action_network("a", "m", "net-b", None))
    fake.find("L2Network", "net-a", "m")["metadata"]["finalizers"] = ["ours", "theirs"]
    going = fake.find("L2Network", "net-b", "m")
    going["metadata"] |= {"finalizers": ["ours"], "deletionTimestamp": "2026-12-01T00:00:00Z"}

    assert kube.remove_finalizer(kube.get(L2Network, "net-a", "m"), L2Network, "ours")
    assert fake.find("L2Network", "net-a", "m")["metadata"]["finalizers"] == ["theirs"]
    assert not kube.remove_finalizer(kube.get(L2Network, "net-a", "m"), L2Network, "ours")  # not there
    # The last finalizer of an object being deleted: the API server removes the object.
    assert kube.remove_finalizer(kube.get(L2Network, "net-b", "m"), L2Network, "ours")
    assert fake.find("L2Network", "net-b", "m") is None
    # Gone meanwhile: nothing to do, no error.
    assert not kube.remove_finalizer(going, L2Network, "ours")
