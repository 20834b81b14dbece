"""Property-based: objects under the names the controller uses, that are not its own (made
by a user, by helm, or by another controller of ours in another model), are never patched,
replaced or deleted: on reconcile, on delete-network (even with force) and on remove. The
refusal is visible: the status or the action failure names the object and the label it lacks."""

from __future__ import annotations

import copy

import pytest
from conftest import APP, NAMESPACE, l2network, make_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops import testing

from l2sm_controlplane import objects
from l2sm_controlplane.crds import custom_resource_definitions
from l2sm_core.manifests import INSTANCE, MANAGED_BY, MANAGED_BY_VALUE, MODEL, OWNER, OWNER_KIND, identity
from l2sm_testing.fake_kube import FakeKube
from l2sm_testing.samples import MULTUS_CRD

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OURS = identity(APP, NAMESPACE)

# Label sets that are not ours: none, another application or model of ours, or ours missing one.
foreign_labels = st.one_of(
    st.just({}),
    st.just({"app.kubernetes.io/name": APP}),
    st.builds(
        lambda app: {MANAGED_BY: MANAGED_BY_VALUE, INSTANCE: app, MODEL: NAMESPACE},
        st.sampled_from(["l2sm-b", "x"]),
    ),
    st.builds(
        lambda model: {MANAGED_BY: MANAGED_BY_VALUE, INSTANCE: APP, MODEL: model},
        st.sampled_from(["other", "l2sm-2"]),
    ),
    st.sampled_from(sorted(OURS)).map(lambda drop: {k: v for k, v in OURS.items() if k != drop}),
)


def _with_labels(obj, labels):
    obj = copy.deepcopy(obj)
    obj["metadata"]["labels"] = dict(labels)
    obj["metadata"].pop("annotations", None)
    return obj


def _foreign(kind: str, labels: dict[str, str]) -> dict:
    """An object of a name the charm uses, with someone else's labels."""
    if kind == "crd":
        return _with_labels(custom_resource_definitions(APP, NAMESPACE)[0], labels)
    if kind in ("sdn", "webhook-service"):
        build = objects.sdn_service if kind == "sdn" else objects.webhook_service
        service = _with_labels(build(APP, NAMESPACE, f"{APP}-0"), labels)
        service["spec"]["clusterIP"] = "10.152.183.99"
        return service
    if kind == "webhook":
        return _with_labels(objects.pod_webhook(APP, NAMESPACE, "Zm9yZWlnbg=="), labels)
    return _with_labels(objects.charm_secret(APP, NAMESPACE, {"webhook-tls": {"ca": "theirs"}}), labels)


@pytest.fixture
def cluster(monkeypatch):
    """A holder whose `kube` every charm run reaches: each example puts a fresh one in."""
    holder: dict[str, FakeKube] = {}
    monkeypatch.setattr("l2sm_knf.kube.Client", lambda **_: holder["kube"])
    return holder


def _fresh(cluster, foreign=None, crds=True) -> FakeKube:
    kube = FakeKube(default_namespace=NAMESPACE)
    kube.add(MULTUS_CRD)
    if crds:
        for crd in custom_resource_definitions(APP, NAMESPACE):
            kube.add(crd)
    if foreign is not None:
        kube.add(foreign)
    cluster["kube"] = kube
    return kube


def _key(obj):
    return (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


@given(kind=st.sampled_from(["crd", "sdn", "webhook-service", "webhook", "secret"]), labels=foreign_labels)
@PROPERTY
def test_foreign_objects_are_left_untouched(ctx, cluster, controller, oar_dir, kind, labels):
    foreign = _foreign(kind, labels)
    kube = _fresh(cluster, foreign, crds=kind != "crd")
    before = copy.deepcopy(kube.objects[_key(foreign)])
    out = ctx.run(ctx.on.config_changed(), make_state(oar_dir))
    assert kube.objects[_key(foreign)] == before
    assert not [w for w in kube.writes if w[1:] == _key(foreign)]
    name = foreign["metadata"]["name"]
    if kind == "secret" and ctx.has_secrets:
        # Juju 3 keeps its secrets in Juju: the Secret is neither read nor needed.
        assert out.unit_status.name != "blocked" or name not in out.unit_status.message
    else:
        assert out.unit_status.name == "blocked", out.unit_status
        message = out.unit_status.message
        assert name in message, message
        if "another L2S-M is installed" not in message:
            missing = next(k for k, v in OURS.items() if labels.get(k) != v)
            assert f"lacks label {missing}=" in message, message
    # Removal takes only what is ours.
    ctx.run(ctx.on.remove(), testing.State(**{**make_state(oar_dir).__dict__, "planned_units": 0}))
    assert kube.objects[_key(foreign)] == before


@given(
    labels=st.one_of(
        st.builds(
            lambda app: {OWNER_KIND: "action", OWNER: app}, st.sampled_from(["l2sm-b", "other-controller"])
        ),
        st.just({OWNER_KIND: "action"}),
    ),
    namespace=st.sampled_from([NAMESPACE, "other-model"]),
    force=st.booleans(),
)
@PROPERTY
def test_delete_network_never_takes_another_controllers(
    ctx, cluster, controller, oar_dir, labels, namespace, force
):
    kube = _fresh(cluster)
    network = l2network("net-x", namespace=namespace, labels=labels)
    kube.add(network)
    before = copy.deepcopy(kube.objects[_key(network)])
    params = {"name": "net-x", "force": force}
    with pytest.raises(testing.ActionFailed) as info:
        ctx.run(ctx.on.action("delete-network", params=params), make_state(oar_dir))
    assert kube.objects[_key(network)] == before
    assert f"'{namespace}/net-x' is not ours" in info.value.message
    assert "run delete-network on the application that made it" in info.value.message


def test_same_app_name_in_another_model_is_not_ours(ctx, cluster, controller, oar_dir):
    kube = _fresh(cluster)
    kube.add(l2network("net-x", namespace="other-model", labels={OWNER_KIND: "action", OWNER: APP}))
    with pytest.raises(testing.ActionFailed, match="it is in namespace 'other-model'"):
        ctx.run(ctx.on.action("delete-network", params={"name": "net-x", "force": True}), make_state(oar_dir))
    assert kube.find("L2Network", "net-x", "other-model") is not None


def test_finalizers_of_another_installation_stay_on_remove(ctx, cluster, controller, oar_dir):
    # Blocked by another L2S-M's webhook, then removed: its operator's finalizers are not ours.
    kube = _fresh(cluster)
    other = _with_labels(objects.pod_webhook("l2sm-b", "elsewhere", "Zm9yZWlnbg=="), {})
    kube.add(other)
    network = l2network("net-x", labels={}) | {}
    network["metadata"]["finalizers"] = ["l2sm.operator.io/finalizer"]
    kube.add(network)
    ctx.run(ctx.on.remove(), testing.State(**{**make_state(oar_dir).__dict__, "planned_units": 0}))
    assert kube.find("L2Network", "net-x", NAMESPACE)["metadata"]["finalizers"] == [
        "l2sm.operator.io/finalizer"
    ]
    assert kube.find("MutatingWebhookConfiguration", other["metadata"]["name"]) is not None
