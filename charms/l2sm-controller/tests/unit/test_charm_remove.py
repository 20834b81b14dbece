"""Removal without collateral damage."""

import logging

from conftest import APP, NAMESPACE, controller_container, l2network, make_state, manager_container

from l2sm_controlplane.crds import CRD_KINDS, crd_name


def _installed(ctx, kube, oar_dir):
    state = make_state(oar_dir)
    out = ctx.run(ctx.on.pebble_ready(next(c for c in state.containers if c.name == "controller")), state)
    assert kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods") is not None
    kube.writes.clear()
    return out


def _removing(state, planned_units=0):
    return state.__class__(**{**state.__dict__, "planned_units": planned_units})


def test_remove_deletes_webhook_first_then_services_then_crds(ctx, kube, controller, oar_dir):
    out = _installed(ctx, kube, oar_dir)
    ctx.run(ctx.on.remove(), _removing(out))
    assert kube.writes[0] == ("delete", "MutatingWebhookConfiguration", "", f"{APP}-{NAMESPACE}-pods")
    assert {w[3] for w in kube.writes[1:3]} == {f"{APP}-sdn", f"{APP}-webhook"}
    rest = kube.writes[3:]
    if not ctx.has_secrets:  # Juju 2.9: the charm's own Secret goes too (Juju removes its secrets)
        assert rest[0] == ("delete", "Secret", NAMESPACE, f"{APP}-secrets")
        rest = rest[1:]
    assert kube.kinds("Secret") == []
    assert {w[3] for w in rest} == {crd_name(k) for k in CRD_KINDS}
    assert kube.kinds("CustomResourceDefinition") == [
        kube.find("CustomResourceDefinition", "network-attachment-definitions.k8s.cni.cncf.io")
    ]


def test_the_secret_goes_even_while_crds_stay(ctx, kube, controller, oar_dir):
    out = _installed(ctx, kube, oar_dir)
    kube.add(l2network("net-a", namespace="cdn"))
    ctx.run(ctx.on.remove(), _removing(out))
    assert kube.kinds("Secret") == []
    assert kube.find("CustomResourceDefinition", crd_name("L2Network")) is not None


def test_crds_kept_while_networks_exist(ctx, kube, controller, oar_dir, caplog):
    out = _installed(ctx, kube, oar_dir)
    kube.add(l2network("net-a", namespace="cdn"))
    caplog.set_level(logging.WARNING)
    ctx.run(ctx.on.remove(), _removing(out))
    assert kube.find("MutatingWebhookConfiguration", f"{APP}-{NAMESPACE}-pods") is None
    assert kube.find("Service", f"{APP}-sdn", NAMESPACE) is None
    for kind in CRD_KINDS:
        assert kube.find("CustomResourceDefinition", crd_name(kind)) is not None
    assert "keeping the L2S-M CRDs: 1 object(s) still exist: L2Network cdn/net-a" in caplog.text


def test_crds_kept_while_the_switch_fabric_exists(ctx, kube, controller, oar_dir, caplog):
    out = _installed(ctx, kube, oar_dir)
    kube.add(
        {
            "apiVersion": "l2sm.l2sm.k8s.local/v1",
            "kind": "Overlay",
            "metadata": {"name": "fabric", "namespace": NAMESPACE},
            "spec": {"provider": {"name": "l2sm-controller", "domain": ["10.0.0.1"]}},
        }
    )
    caplog.set_level(logging.WARNING)
    ctx.run(ctx.on.remove(), _removing(out))
    assert kube.find("CustomResourceDefinition", crd_name("Overlay")) is not None
    assert f"Overlay {NAMESPACE}/fabric" in caplog.text


def test_scale_down_keeps_everything(ctx, kube, controller, oar_dir):
    out = _installed(ctx, kube, oar_dir)
    ctx.run(ctx.on.remove(), _removing(out, planned_units=1))
    assert kube.writes == []


def test_remove_without_trust_says_what_to_do(ctx, kube, controller, oar_dir, caplog):
    out = _installed(ctx, kube, oar_dir)
    kube.forbidden = True
    ctx.run(ctx.on.remove(), _removing(out))
    assert f"delete the webhook {APP}-{NAMESPACE}-pods by hand" in caplog.text


def test_remove_before_anything_was_installed(ctx, kube, controller, oar_dir):
    state = make_state(
        oar_dir, containers={controller_container(oar_dir, connect=False), manager_container()}
    )
    ctx.run(ctx.on.remove(), _removing(state))
    assert kube.writes == []  # nothing was there, nothing to delete


def test_crds_another_installation_made_are_kept(ctx, kube, controller, oar_dir, caplog):
    from l2sm_controlplane.crds import custom_resource_definitions

    for crd in custom_resource_definitions("l2sm-controller", "elsewhere"):
        kube.add(crd)  # the other model's controller installed them
    state = make_state(
        oar_dir, containers={controller_container(oar_dir, connect=False), manager_container()}
    )
    ctx.run(ctx.on.remove(), _removing(state))
    for kind in CRD_KINDS:
        assert kube.find("CustomResourceDefinition", crd_name(kind)) is not None
    assert "CustomResourceDefinition 'l2networks.l2sm.l2sm.k8s.local' is not ours" in caplog.text
    assert "l2sm-charms.juju.is/model=l2sm" in caplog.text  # the label it lacks
