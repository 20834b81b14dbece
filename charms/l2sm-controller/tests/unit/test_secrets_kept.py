"""The controller's secrets (webhook CA key, serving key, REST credentials) are where they
belong and nowhere else, over a whole life: install, config (a renewal that rotates the CA,
a refused value), relations, every action (some refused), upgrade, leadership lost and
regained, removal; and a Juju upgrade from 2.9. The values come from what the charm stored."""

from __future__ import annotations

import dataclasses
import logging

import charm
import pytest
import workload
from conftest import APP, JUJU_VERSIONS, NAMESPACE, JujuContext, make_state
from ops import testing

from l2sm_testing import secret_scan
from l2sm_testing.secret_scan import Allowed, Capture, Sweep

SECRET_OBJECT = f"{NAMESPACE}/{APP}-secrets"
CERT_DIR = workload.WEBHOOK_CERT_DIR

# Where each secret belongs; anything else that holds one is a leak.
JUJU_SECRETS = [
    Allowed("juju-secret {label} content.{key}", "Juju 3: each secret in its own app-owned Juju secret"),
    Allowed("juju-secret {label} tracked.{key}", "the same, the revision the charm tracks"),
]
KUBERNETES_SECRET = [
    Allowed(
        f"kube {verb} Secret {SECRET_OBJECT}.data.{{label}}.{{key}}",
        "Juju 2.9 has no secrets: one Secret the charm owns, entry <label>.<key>",
        step="juju 2.9*",
    )
    for verb in ("apply", "object")
]
EVERYWHERE = (
    [
        Allowed(
            f"container manager {form} {CERT_DIR}/tls.key",
            "the manager serves the webhook with it, from controller-runtime's cert dir (mode 0600)",
            secrets="webhook-tls/key",
        )
        for form in ("file", "pushed")
    ]
    + [
        Allowed(
            f"container controller {where}.checks.{workload.CONTROLLER_CHECK}.http.headers.Authorization",
            "ONOS's REST API needs Basic auth for the check (upstream's fixed karaf:karaf)",
            secrets="controller-credentials/password",
        )
        for where in ("layer controller", "plan")
    ]
    + [
        Allowed(
            where,
            "upstream's fixed karaf:karaf: the password is also the username, stored beside it",
            secrets="controller-credentials/password",
            step=step,
        )
        for where, step in (
            ("juju-secret controller-credentials content.username", "*"),
            ("juju-secret controller-credentials tracked.username", "*"),
            (f"kube apply Secret {SECRET_OBJECT}.data.controller-credentials.username", "juju 2.9*"),
            (f"kube object Secret {SECRET_OBJECT}.data.controller-credentials.username", "juju 2.9*"),
        )
    ]
)


def allowed(juju_version: str) -> list[Allowed]:
    has_secrets = JujuContext(charm.L2smControllerCharm, juju_version=juju_version).has_secrets
    return EVERYWHERE + (JUJU_SECRETS if has_secrets else KUBERNETES_SECRET)


def _relations():
    switch = testing.Relation("l2sm-controller", remote_app_name="l2sm-switch", remote_app_data={})
    network = testing.Relation(
        "l2sm-controller", remote_app_name="my-first-osm-net", remote_units_data={0: {"note": "hello"}}
    )
    return switch, network


def _life(ctx, sweep, oar_dir):
    """Every kind of dispatch the controller has, in a plausible order."""
    switch, network = _relations()
    state = make_state(oar_dir, relations={switch, network})
    run = sweep.run
    state = run(ctx.on.install(), state)
    state = run(ctx.on.pebble_ready(state.get_container("controller")), state)
    state = run(ctx.on.config_changed(), state)
    state = run(ctx.on.relation_joined(state.get_relation(switch.id)), state)
    state = run(ctx.on.relation_changed(state.get_relation(network.id), remote_unit=0), state)
    for action, params in (
        ("list-networks", {}),
        ("create-network", {"name": "net-a", "cidr": "10.0.0.0/24"}),
        ("create-network", {"name": "net-a"}),  # refused: exists
        ("show-network", {"name": "net-a"}),
        ("show-network", {"name": "missing"}),  # refused
        ("delete-network", {"name": "net-a"}),
        ("controller-status", {}),
        ("create-network", {"name": "Bad_Name"}),  # refused parameter
    ):
        state = run(ctx.on.action(action, params=params), state)
    # The serving certificate is due at once: renewed, and a new CA (the old one expires
    # before the new certificate would).
    state = run(
        ctx.on.config_changed(), dataclasses.replace(state, config={"webhook-certificate-days": 3650})
    )
    state = run(
        ctx.on.config_changed(),
        dataclasses.replace(state, config={"webhook-certificate-days": 3650, "webhook-renew-days": 365}),
    )
    state = run(ctx.on.config_changed(), dataclasses.replace(state, config={"webhook-renew-days": 5000}))
    state = run(ctx.on.config_changed(), dataclasses.replace(state, config={}))
    state = run(ctx.on.update_status(), state)
    state = run(ctx.on.upgrade_charm(), state)
    state = run(ctx.on.update_status(), dataclasses.replace(state, leader=False))
    state = run(ctx.on.action("controller-status"), state)  # refused: not the leader
    state = run(ctx.on.leader_elected(), dataclasses.replace(state, leader=True))
    state = run(ctx.on.relation_departed(state.get_relation(network.id), remote_unit=0), state)
    state = run(ctx.on.relation_broken(state.get_relation(network.id)), state)
    return run(ctx.on.remove(), dataclasses.replace(state, planned_units=0))


def _scan(sweeps, kube, caplog):
    values = secret_scan.unique(v for s in sweeps for v in s.secret_values(kube.objects.values()))
    places = [p for s in sweeps for p in s.places()]
    places += secret_scan.log_places(caplog.records)
    return values, secret_scan.scan(values, places)


def test_secrets_only_where_they_belong(ctx, juju_version, kube, controller, oar_dir, caplog):
    caplog.set_level(logging.DEBUG)
    capture = Capture()
    sweep = Sweep(ctx, capture, name=f"juju {juju_version}", objects=lambda: kube.objects.values())
    with capture.installed():
        out = _life(ctx, sweep, oar_dir)
    values, found = _scan([sweep], kube, caplog)

    # What must have been found, so the scan saw something: both CA keys (the renewal made a
    # new CA), both serving keys, and the password; each where it belongs.
    assert {v.origin for v in values} == {
        "webhook-tls/ca-key",
        "webhook-tls/key",
        "controller-credentials/password",
    }
    assert sum(v.origin == "webhook-tls/ca-key" for v in values) == 2
    assert sum(v.origin == "webhook-tls/key" for v in values) == 2
    assert any(f.where == f"container manager file {CERT_DIR}/tls.key" for f in found)
    store = (
        "juju-secret webhook-tls content.ca-key" if ctx.has_secrets else f"kube apply Secret {SECRET_OBJECT}"
    )
    assert any(f.where.startswith(store) for f in found)
    assert secret_scan.leaks(found, allowed(juju_version)) == [], "\n".join(
        map(str, secret_scan.leaks(found, allowed(juju_version)))
    )
    # Removed: no Kubernetes Secret is left holding any of it, whatever the Juju.
    assert kube.kinds("Secret") == []
    assert out.unit_status.name != "error"


@pytest.mark.parametrize("juju_version", [v for v in JUJU_VERSIONS if not v.startswith("2.")])
def test_secrets_leave_kubernetes_after_a_juju_upgrade(juju_version, kube, controller, oar_dir, caplog):
    caplog.set_level(logging.DEBUG)
    capture = Capture()
    old = JujuContext(charm.L2smControllerCharm, juju_version="2.9.43")
    new = JujuContext(charm.L2smControllerCharm, juju_version=juju_version)
    before = Sweep(old, capture, name="juju 2.9.43", objects=lambda: kube.objects.values())
    after = Sweep(new, capture, name=f"juju {juju_version}", objects=lambda: kube.objects.values())
    switch, network = _relations()
    with capture.installed():
        state = before.run(old.on.config_changed(), make_state(oar_dir, relations={switch, network}))
        state = before.run(old.on.relation_joined(state.get_relation(switch.id)), state)
        state = after.run(new.on.upgrade_charm(), state)
        state = after.run(new.on.update_status(), state)
        after.run(new.on.action("controller-status"), state)
    values, found = _scan([before, after], kube, caplog)
    assert {v.origin for v in values} == {
        "webhook-tls/ca-key",
        "webhook-tls/key",
        "controller-credentials/password",
    }
    # On 2.9 the Secret holds them; after the upgrade the Juju secrets, and no Secret any more.
    rules = EVERYWHERE + KUBERNETES_SECRET + JUJU_SECRETS
    leaked = secret_scan.leaks(found, rules)
    assert leaked == [], "\n".join(map(str, leaked))
    assert kube.kinds("Secret") == []
    assert not any(f.where.startswith("kube") and f.step.startswith(f"juju {juju_version}") for f in found)
