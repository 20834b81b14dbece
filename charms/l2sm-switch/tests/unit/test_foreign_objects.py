"""Property-based: an Overlay or attachment under the names the switch charm uses, that is
not its own, is never patched, recreated or deleted (reconcile, remove), and the refusal
names the object and the label it lacks."""

from __future__ import annotations

import copy

from conftest import APP, MODEL, NAMESPACE, cluster_snapshot, foreign_overlay, knf_pod, make_state, nad
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2sm_core.manifests import INSTANCE, MANAGED_BY, MANAGED_BY_VALUE, identity
from l2sm_core.manifests import MODEL as MODEL_LABEL

PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OURS = identity(APP, MODEL)
# Not ours: no labels, another application or model, or ours with one missing.
foreign_labels = st.one_of(
    st.just({}),
    st.builds(
        lambda app, model: {MANAGED_BY: MANAGED_BY_VALUE, INSTANCE: app, MODEL_LABEL: model},
        st.sampled_from([APP, "l2sm-switch-b"]),
        st.sampled_from(["other-model", MODEL]),
    ).filter(lambda labels: labels != OURS),
    st.sampled_from(sorted(OURS)).map(lambda drop: {k: v for k, v in OURS.items() if k != drop}),
)


@given(labels=foreign_labels, namespace=st.sampled_from([NAMESPACE, MODEL, "elsewhere"]))
@PROPERTY
def test_a_foreign_overlay_under_our_name_stays(ctx, kube, labels, namespace):
    for key in [k for k in kube.objects if k[0] == "Overlay"]:
        del kube.objects[key]  # the fixture's cluster outlives each example
    kube.add(foreign_overlay(APP, namespace=namespace, labels=labels))
    writes = len(kube.writes)
    before = copy.deepcopy(kube.find("Overlay", APP, namespace))
    out = ctx.run(ctx.on.config_changed(), make_state())
    assert kube.find("Overlay", APP, namespace) == before
    assert not [w for w in kube.writes[writes:] if w[1] == "Overlay"]
    assert out.unit_status.name == "blocked", out.unit_status
    missing = next(k for k, v in OURS.items() if labels.get(k) != v)
    assert f"lacks label {missing}=" in out.unit_status.message
    assert f"{namespace}/{APP}" in out.unit_status.message
    ctx.run(ctx.on.remove(), make_state(relation=False, planned_units=0))
    assert kube.find("Overlay", APP, namespace) == before


@given(labels=st.sampled_from([{}, {"app": "l2sm"}, {"app": "l2sm", "overlay": "another-fabric"}]))
@PROPERTY
def test_an_attachment_not_of_our_overlay_is_not_labelled(ctx, kube, labels):
    for key in [k for k in kube.objects if k[0] == "Overlay"]:
        del kube.objects[key]
    ctx.run(ctx.on.config_changed(), make_state())
    attachment = nad(APP, 1)
    attachment["metadata"]["labels"] = dict(labels)
    kube.add(attachment)
    kube.objects.pop(("Pod", "knfs", "cache-0"), None)
    kube.add(knf_pod("cache-0", "node-a", [1]))
    before = cluster_snapshot(kube)[0]
    out = ctx.run(ctx.on.update_status(), make_state())
    assert cluster_snapshot(kube)[0] == before
    assert out.unit_status.name == "blocked", out.unit_status
    assert f"{NAMESPACE}/{APP}-veth1" in out.unit_status.message
    assert "lacks label" in out.unit_status.message
