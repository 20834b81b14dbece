"""The content server is given no secret and makes none: over a whole life (networks, the
origin relation, actions, some refused, config, upgrade, leadership, removal) nothing it
produces is secret-shaped, it makes no Juju secret and writes no Kubernetes Secret."""

from __future__ import annotations

import dataclasses
import logging

from conftest import net_b, origin_relation, state

from l2sm_testing import secret_scan
from l2sm_testing.secret_scan import Capture, Sweep


def test_nothing_secret_is_made_or_written(ctx, juju_version, cluster, content, caplog):
    caplog.set_level(logging.DEBUG)
    capture = Capture()
    sweep = Sweep(
        ctx,
        capture,
        name=f"juju {juju_version}",
        objects=lambda: [cluster.statefulset, *cluster.pods.values()],
    )
    origin = origin_relation()
    run = sweep.run
    with capture.installed():
        out = run(ctx.on.install(), state(content, relations=[net_b(), origin]))
        out = run(ctx.on.config_changed(), out)
        cluster.restart_pods()
        out = run(ctx.on.update_status(), out)
        out = run(ctx.on.relation_joined(out.get_relation(origin.id)), out)
        for action, params in (
            ("list-content", {}),
            ("remove-content", {"name": "missing.bin"}),  # refused
            ("check-connectivity", {"target": "not-an-address"}),  # refused
        ):
            out = run(ctx.on.action(action, params=params), out)
        out = run(ctx.on.config_changed(), dataclasses.replace(out, config={"autoindex": True}))
        out = run(ctx.on.config_changed(), dataclasses.replace(out, config={"port": 0}))  # refused
        out = run(ctx.on.upgrade_charm(), dataclasses.replace(out, config={}))
        out = run(ctx.on.update_status(), dataclasses.replace(out, leader=False))
        out = run(ctx.on.leader_elected(), dataclasses.replace(out, leader=True))
        run(ctx.on.remove(), out)
    places = sweep.places(secret_scan.log_places(caplog.records))
    assert len(places) > 100  # the scan saw the charm's output
    assert secret_scan.secret_shaped(places) == []
    assert sweep.secret_values() == []
    assert [s for _, out in sweep.steps for s in out.secrets] == []
    assert not [w for w in capture.kube if w.kind == "Secret"]
