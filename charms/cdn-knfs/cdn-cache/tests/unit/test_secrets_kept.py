"""The cache's TLS private key (Juju 3: made by the tls-certificates library, kept in a Juju
secret) is in that secret and in nginx's key file only, over a whole life: certificate
requested, issued, renewed, actions (some refused), upgrade, leadership, removal. On Juju
2.9 the cache makes no key and holds nothing secret-shaped."""

from __future__ import annotations

import dataclasses
import logging

import charm
from conftest import Authority, origin_relation, state
from ops import testing

from l2sm_testing import secret_scan
from l2sm_testing.secret_scan import Allowed, Capture, Sweep

ALLOWED = [
    Allowed("juju-secret {label} content.{key}", "Juju 3: the library keeps the key in its own Juju secret"),
    Allowed("juju-secret {label} tracked.{key}", "the same, the revision the charm tracks"),
] + [
    Allowed(
        f"container nginx {form} {charm.KEY_FILE}",
        "nginx serves HTTPS with it (mode 0600, outside the content)",
    )
    for form in ("file", "pushed")
]


def _answered(out, relation_id, authority):
    requested = out.get_relation(relation_id).local_unit_data
    answered = dataclasses.replace(out.get_relation(relation_id), remote_app_data=authority.answer(requested))
    return answered, dataclasses.replace(
        out, relations={answered, *[r for r in out.relations if r.id != relation_id]}
    )


def _life(ctx, sweep, content):
    tls_rel = testing.Relation("certificates", remote_app_name="self-signed-certificates")
    origin = origin_relation()
    run = sweep.run
    out = run(ctx.on.install(), state(content, relations=[origin, tls_rel]))
    out = run(ctx.on.config_changed(), out)
    out = run(ctx.on.relation_created(out.get_relation(tls_rel.id)), out)
    if ctx.juju_version.startswith("3."):
        for _ in range(2):  # issued, then renewed by another authority
            answered, out = _answered(out, tls_rel.id, Authority())
            out = run(ctx.on.relation_changed(answered), out)
    out = run(ctx.on.relation_changed(out.get_relation(origin.id)), out)
    for action, params in (
        ("list-content", {}),
        ("purge", {"name": "missing.bin"}),  # refused: nothing of that name
        ("check-connectivity", {"target": "not-an-address"}),  # refused
    ):
        out = run(ctx.on.action(action, params=params), out)
    out = run(ctx.on.config_changed(), dataclasses.replace(out, config={"port": 443}))
    out = run(ctx.on.config_changed(), dataclasses.replace(out, config={"port": 0}))  # refused
    out = run(ctx.on.upgrade_charm(), dataclasses.replace(out, config={}))
    out = run(ctx.on.update_status(), dataclasses.replace(out, leader=False))
    out = run(ctx.on.leader_elected(), dataclasses.replace(out, leader=True))
    out = run(ctx.on.relation_broken(out.get_relation(tls_rel.id)), out)
    return run(ctx.on.remove(), out)


def test_the_tls_key_stays_in_its_secret_and_nginx(ctx, juju_version, content, cluster, caplog):
    caplog.set_level(logging.DEBUG)
    capture = Capture()
    sweep = Sweep(
        ctx,
        capture,
        name=f"juju {juju_version}",
        objects=lambda: [cluster.statefulset, *cluster.pods.values()],
    )
    with capture.installed():
        _life(ctx, sweep, content)
    places = sweep.places(secret_scan.log_places(caplog.records))
    values = sweep.secret_values()
    if juju_version.startswith("2."):
        assert values == [] and [s for _, out in sweep.steps for s in out.secrets] == []
        assert secret_scan.secret_shaped(places) == []
        return
    # The library's key (one per request; a renewal keeps it), a PEM private key.
    assert values and {v.value.startswith("-----BEGIN") for v in values} == {True}
    found = secret_scan.scan(values, places)
    assert any(f.where == f"container nginx file {charm.KEY_FILE}" for f in found)
    leaked = secret_scan.leaks(found, ALLOWED)
    assert leaked == [], "\n".join(map(str, leaked))
    assert not [w for w in capture.kube if w.kind == "Secret"]
