"""The controller's REST credentials reach this charm only as a reference (a Juju secret
granted to the relation, or the controller's Kubernetes Secret on Juju 2.9): over a whole
life it copies them nowhere, and it makes no secret of its own."""

from __future__ import annotations

import dataclasses
import logging

from conftest import CONTROLLER_DATA, MODEL, controller_relation, members
from ops import testing

from l2sm_testing import secret_scan
from l2sm_testing.secret_scan import Capture, Sweep


def _credentials(ctx, kube):
    """Fresh credentials where this Juju keeps them, and the relation naming them."""
    granted, reference = secret_scan.granted_credentials(ctx.juju_version, kube)
    return granted, controller_relation({**CONTROLLER_DATA, "credentials-secret": reference})


def test_credentials_stay_where_the_controller_put_them(ctx, kube, caplog):
    caplog.set_level(logging.DEBUG)
    granted, controller = _credentials(ctx, kube)
    cache = members("cdn-cache", {0: ("10.0.1.10/24", []), 1: ("", [])})
    router = members("cdn-router", {0: ("10.0.1.1/24", ["10.0.2.0/24"])})
    state = testing.State(
        leader=True,
        model=testing.Model(name=MODEL),
        config={"cidr": "10.0.1.0/24"},
        relations={controller, cache, router},
        secrets={granted} if granted else set(),
    )
    capture = Capture()
    sweep = Sweep(ctx, capture, name=f"juju {ctx.juju_version}", objects=lambda: kube.objects.values())
    run = sweep.run
    with capture.installed():
        state = run(ctx.on.install(), state)
        state = run(ctx.on.config_changed(), state)
        state = run(ctx.on.relation_joined(state.get_relation(controller.id)), state)
        state = run(ctx.on.relation_changed(state.get_relation(controller.id)), state)
        state = run(ctx.on.relation_changed(state.get_relation(cache.id), remote_unit=1), state)
        state = run(ctx.on.relation_changed(state.get_relation(router.id), remote_unit=0), state)
        state = run(ctx.on.action("show"), state)
        state = run(ctx.on.action("show", params={"application-name": "Not An App"}), state)  # refused
        state = run(
            ctx.on.config_changed(), dataclasses.replace(state, config={"cidr": "10.9.0.0/24"})
        )  # refused
        state = run(ctx.on.upgrade_charm(), dataclasses.replace(state, config={"cidr": "10.0.1.0/24"}))
        state = run(ctx.on.update_status(), dataclasses.replace(state, leader=False))
        state = run(ctx.on.action("show"), state)  # refused: not the leader
        state = run(ctx.on.leader_elected(), dataclasses.replace(state, leader=True))
        state = run(ctx.on.relation_departed(state.get_relation(cache.id), remote_unit=1), state)
        state = run(ctx.on.relation_broken(state.get_relation(cache.id)), state)
        state = run(ctx.on.relation_broken(state.get_relation(controller.id)), state)
        run(ctx.on.remove(), state)

    values = sweep.secret_values(kube.objects.values())
    assert {v.key for v in values} == {"password"}  # what the controller handed over
    places = sweep.places(secret_scan.log_places(caplog.records))
    found = secret_scan.scan(values, places)
    assert found, "the scan must at least see the credentials where the controller keeps them"
    leaked = secret_scan.leaks(found, secret_scan.credential_places(granted))
    assert leaked == [], "\n".join(map(str, leaked))
    # Nothing secret of its own either: no Juju secret made, no Secret written.
    assert [s for _, out in sweep.steps for s in out.secrets if s != granted] == []
    assert not [w for w in capture.kube if w.kind == "Secret"]
