"""The router is given no secret and makes none: over a whole life (networks, rules added
and refused, links, config, upgrade, leadership, removal) nothing it produces is
secret-shaped, it makes no Juju secret and writes no Kubernetes Secret."""

from __future__ import annotations

import dataclasses
import logging

from conftest import ADDRESSES, networks, router_container
from ops import testing

from l2sm_testing import secret_scan
from l2sm_testing.secret_scan import Capture, Sweep


def test_nothing_secret_is_made_or_written(ctx, juju_version, cluster, etc, caplog):
    caplog.set_level(logging.DEBUG)
    capture = Capture()
    sweep = Sweep(
        ctx,
        capture,
        name=f"juju {juju_version}",
        objects=lambda: [cluster.statefulset, *cluster.pods.values()],
    )
    start = testing.State(
        leader=True,
        relations={*networks(), testing.PeerRelation("router-peers")},
        containers={router_container(etc)},
        config={"addresses": ADDRESSES},
    )
    run = sweep.run
    with capture.installed():
        out = run(ctx.on.install(), start)
        out = run(ctx.on.config_changed(), out)
        cluster.restart_pods()
        out = run(ctx.on.update_status(), out)
        for action, params in (
            ("list-rules", {}),
            ("show-routes", {}),
            (
                "add-rule",
                {
                    "name": "web",
                    "from": "clients",
                    "to": "caches",
                    "protocol": "tcp",
                    "port": "80",
                    "action": "accept",
                },
            ),
            ("remove-rule", {"name": "missing"}),  # refused
            ("set-link", {"network": "caches", "state": "down"}),
            ("set-link", {"network": "caches", "state": "up"}),
            ("check-connectivity", {"target": "not-an-address"}),  # refused
        ):
            out = run(ctx.on.action(action, params=params), out)
        config = {"addresses": ADDRESSES, "default-policy": "drop"}
        out = run(ctx.on.config_changed(), dataclasses.replace(out, config=config))
        out = run(ctx.on.config_changed(), dataclasses.replace(out, config={**config, "rules": "not json"}))
        out = run(ctx.on.upgrade_charm(), dataclasses.replace(out, config={"addresses": ADDRESSES}))
        out = run(ctx.on.update_status(), dataclasses.replace(out, leader=False))
        out = run(ctx.on.leader_elected(), dataclasses.replace(out, leader=True))
        run(ctx.on.remove(), out)
    places = sweep.places(secret_scan.log_places(caplog.records))
    assert len(places) > 100  # the scan saw the charm's output
    assert secret_scan.secret_shaped(places) == []
    assert sweep.secret_values() == []
    assert [s for _, out in sweep.steps for s in out.secrets] == []
    assert not [w for w in capture.kube if w.kind == "Secret"]
