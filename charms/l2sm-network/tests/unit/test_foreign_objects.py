"""Property-based: an L2Network under the name this network uses, that is not its own (a
user's, the controller's create-network, another l2sm-network application, or one of the
same name in another model), is never patched or deleted (reconcile, rename, remove), and
the refusal names the object, the label it lacks and the fix."""

from __future__ import annotations

import copy
import dataclasses

from conftest import APP, MODEL, make_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2sm_core.manifests import OWNER, OWNER_KIND

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OURS = {OWNER_KIND: "application", OWNER: APP}
foreign_labels = st.one_of(
    st.just({}),
    st.builds(
        lambda kind, owner: {OWNER_KIND: kind, OWNER: owner},
        st.sampled_from(["application", "action", "other"]),
        st.sampled_from([APP, "other-net", "l2sm-controller"]),
    ),
    st.sampled_from(sorted(OURS)).map(lambda drop: {k: v for k, v in OURS.items() if k != drop}),
)


def _network(name, namespace, labels):
    return {
        "apiVersion": "l2sm.l2sm.k8s.local/v1",
        "kind": "L2Network",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"type": "vnet", "networkCIDR": "192.168.9.0/24"},
    }


@given(
    labels=foreign_labels,
    namespace=st.sampled_from([MODEL, "other-model"]),
    name=st.sampled_from([APP, "net-b"]),
)
@PROPERTY
def test_a_foreign_network_under_our_name_stays(ctx, kube, labels, namespace, name):
    if labels == OURS and namespace == MODEL:
        return  # that one is ours
    for key in [k for k in kube.objects if k[0] == "L2Network"]:
        del kube.objects[key]  # the fixture's cluster outlives each example
    foreign = _network(name, namespace, labels)
    kube.add(foreign)
    before = copy.deepcopy(kube.find("L2Network", name, namespace))
    config = {"cidr": "10.0.1.0/24"} | ({"network-name": name} if name != APP else {})
    out = ctx.run(ctx.on.config_changed(), make_state(config=config))
    assert kube.find("L2Network", name, namespace) == before
    assert out.unit_status.name == "blocked", out.unit_status
    message = out.unit_status.message
    assert f"L2Network '{namespace}/{name}' is not ours" in message, message
    missing = [k for k, v in OURS.items() if labels.get(k) != v]
    if missing:
        assert f"lacks label {missing[0]}=" in message, message
    else:
        assert f"it is in namespace '{namespace}'" in message, message
    assert "set option 'network-name'" in message
    # Renamed away, then removed: neither takes it.
    ctx.run(ctx.on.config_changed(), make_state(config={"cidr": "10.0.1.0/24", "network-name": "mine-x"}))
    ctx.run(ctx.on.remove(), dataclasses.replace(make_state(config=config), planned_units=0))
    assert kube.find("L2Network", name, namespace) == before
    assert kube.find("L2Network", "mine-x", MODEL) is None
