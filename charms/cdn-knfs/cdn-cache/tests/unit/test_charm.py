"""The cache's wiring: nginx and jobs layers, origin choice, bad origin data, TLS on both Jujus."""

from __future__ import annotations

import dataclasses
import json

import charm
import pytest
from conftest import APP, ORIGIN_URLS, UNIT, Authority, integrate_hint, origin_relation, state, status_dir
from ops import pebble, testing

from l2sm_knf.l2sm_network import network_relation


def _container(out: testing.State, name: str) -> testing.Container:
    return out.get_container(name)


def _nginx_conf(ctx, out) -> str:
    fs = _container(out, charm.NGINX).get_filesystem(ctx)
    return (fs / charm.NGINX_CONF.lstrip("/")).read_text()


def test_without_origin_blocked_with_the_dialect_hint(ctx, cluster, content, juju_version):
    out = ctx.run(ctx.on.config_changed(), state(content))
    assert out.unit_status == testing.BlockedStatus(integrate_hint(juju_version))
    # nginx serves what is cached meanwhile.
    assert _container(out, charm.NGINX).plan.services[charm.NGINX].startup == "enabled"


def test_origin_relation_serves_and_syncs(ctx, cluster, content):
    (content / "a.bin").write_bytes(b"a" * 10)
    (content / "b.bin.partial").write_bytes(b"b" * 3)
    out = ctx.run(
        ctx.on.config_changed(), state(content, relations=[origin_relation()], config={"sync-interval": 300})
    )
    assert out.unit_status == testing.ActiveStatus(
        "HTTP :80, 1 files from http://10.0.2.10:80/; sync every 300s; no L2S-M network"
    )
    sync = _container(out, charm.JOBS).plan.services[charm.SYNC]
    assert sync.startup == "enabled"
    assert "--origin-manifest=http://10.0.2.10:80/manifest.json" in sync.command
    assert "--interval=300" in sync.command
    conf = _nginx_conf(ctx, out)
    assert "listen 80;" in conf and "ssl" not in conf
    # The jobs' code is in the jobs container.
    fs = _container(out, charm.JOBS).get_filesystem(ctx)
    assert (fs / "opt/l2sm/l2sm_core/cdn/jobs.py").is_file()


def test_origin_url_option_overrides_the_relation(ctx, cluster, content):
    config = {"origin-url": "http://192.0.2.5:8080/c/", "rate-limit": "200k", "port": 8081}
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[origin_relation()], config=config))
    assert "from http://192.0.2.5:8080/c/" in out.unit_status.message
    assert "--origin-manifest=http://192.0.2.5:8080/c/manifest.json" in (
        _container(out, charm.JOBS).plan.services[charm.SYNC].command
    )
    conf = _nginx_conf(ctx, out)
    assert "limit_rate 204800;" in conf
    assert "listen 8082;" in conf  # the health server moves off the users' port


def test_the_routable_origin_url_wins(ctx, cluster, content):
    net = network_relation("net-b", "10.0.9.0/24", assignments={UNIT: "10.0.9.20/24"})
    relations = [origin_relation(), net]
    out = ctx.run(ctx.on.config_changed(), state(content, relations=relations, config={"sync-interval": 60}))
    cluster.restart_pods()
    out = ctx.run(ctx.on.update_status(), out)
    assert "from http://10.0.9.10:80/" in out.unit_status.message
    assert "net-b 10.0.9.20/24 on net1" in out.unit_status.message
    # Kept for dispatches the KNF library does not reconcile (an action, the origin's data).
    out = ctx.run(ctx.on.relation_changed(out.get_relation(relations[0].id)), out)
    assert (
        "http://10.0.9.10:80/manifest.json" in _container(out, charm.JOBS).plan.services[charm.SYNC].command
    )


def test_pick_url():
    assert charm.pick_url(ORIGIN_URLS, []) == ORIGIN_URLS[0]
    assert charm.pick_url(ORIGIN_URLS, ["10.0.9.0/24"]) == ORIGIN_URLS[1]
    assert charm.pick_url(["http://origin.example/", *ORIGIN_URLS], ["10.0.9.0/25"]) == ORIGIN_URLS[1]
    assert charm.pick_url(["http://origin.example/"], ["10.0.9.0/24"]) == "http://origin.example/"


@pytest.mark.parametrize(
    "data, field",
    [
        ({"urls": "not json"}, "field 'urls': not JSON"),
        ({"urls": json.dumps([])}, "field 'urls'"),
        ({"urls": json.dumps(["ftp://10.0.2.10/"])}, "field 'urls.0'"),
        (
            {"urls": json.dumps(["http://10.0.2.10/"]), "manifest": json.dumps("../x.json")},
            "field 'manifest'",
        ),
    ],
)
def test_bad_origin_data_is_blocked_naming_the_field_keeping_the_last_good(
    ctx, cluster, content, data, field
):
    rel = origin_relation()
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[rel], config={"sync-interval": 60}))
    good_plan = _container(out, charm.JOBS).plan
    bad = dataclasses.replace(out.get_relation(rel.id), remote_app_data=data)
    out = ctx.run(ctx.on.relation_changed(bad), dataclasses.replace(out, relations={bad}))
    assert out.unit_status.name == "blocked"
    assert "bad data on relation 'origin' from cdn-content-server: " in out.unit_status.message
    assert field in out.unit_status.message
    assert out.unit_status.message.endswith("; keeping http://10.0.2.10:80/")
    assert _container(out, charm.JOBS).plan == good_plan


def test_bad_origin_data_never_good_blocks_without_sync(ctx, cluster, content):
    rel = origin_relation({"urls": "[1]"})
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[rel], config={"sync-interval": 60}))
    assert "field 'urls.0'" in out.unit_status.message
    assert charm.SYNC not in _container(out, charm.JOBS).plan.services


def test_origin_not_published_yet_is_blocked_naming_it(ctx, cluster, content):
    # Never Waiting: an origin with no address may publish nothing for ever, and OSM waits
    # for active or blocked.
    rel = origin_relation({})
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[rel]))
    assert out.unit_status == testing.BlockedStatus(
        f"{rel.remote_app_name} has published no URL yet: it needs an address on a network (see its status)"
    )


def test_origin_gone_stops_the_sync(ctx, cluster, content):
    rel = origin_relation()
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[rel], config={"sync-interval": 60}))
    assert _container(out, charm.JOBS).service_statuses[charm.SYNC].value == "active"
    out = ctx.run(ctx.on.relation_broken(out.get_relation(rel.id)), out)
    assert _container(out, charm.JOBS).service_statuses[charm.SYNC].value == "inactive"
    assert out.unit_status.name == "blocked"


def test_sync_interval_zero_stops_a_running_sync(ctx, cluster, content):
    rel = origin_relation()
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[rel], config={"sync-interval": 60}))
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"sync-interval": 0}))
    jobs = _container(out, charm.JOBS)
    assert jobs.plan.services[charm.SYNC].startup == "disabled"
    assert jobs.service_statuses[charm.SYNC].value == "inactive"


def test_last_failed_sync_round_shows_in_the_status(ctx, cluster, content):
    rel = origin_relation()
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[rel], config={"sync-interval": 60}))
    (status_dir(content) / "sync.json").write_text(
        json.dumps({"state": "failed", "error": "http://10.0.2.10:80/manifest.json: cannot connect"})
    )
    out = ctx.run(ctx.on.update_status(), out)
    assert "last sync failed: http://10.0.2.10:80/manifest.json: cannot connect" in out.unit_status.message


def test_a_bad_option_is_blocked_naming_it_and_changes_nothing(ctx, cluster, content):
    rel = origin_relation()
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[rel]))
    before = (out.get_container(charm.NGINX).plan, _nginx_conf(ctx, out))
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"rate-limit": "2g"}))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("option 'rate-limit': '2g' is not a rate")
    assert (out.get_container(charm.NGINX).plan, _nginx_conf(ctx, out)) == before


def test_containers_not_up_yet_wait(ctx, cluster, content):
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[origin_relation()], connect=False))
    assert out.unit_status == testing.WaitingStatus("waiting for the nginx container")


def test_config_change_reloads_a_running_nginx(ctx, cluster, content):
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[origin_relation()]))
    assert _container(out, charm.NGINX).service_statuses[charm.NGINX].value == "active"
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"rate-limit": "1m"}))
    commands = [e.command for e in ctx.exec_history[charm.NGINX]]
    assert commands[-2:] == [
        ["nginx", "-c", charm.NGINX_CONF, "-t", "-q"],
        ["nginx", "-c", charm.NGINX_CONF, "-s", "reload"],
    ]
    # The same config again: no reload, no replan.
    before = len(ctx.exec_history[charm.NGINX])
    out = ctx.run(ctx.on.update_status(), out)
    assert len(ctx.exec_history[charm.NGINX]) == before


def test_a_config_nginx_refuses_is_blocked(ctx, cluster, content):
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[origin_relation()]))
    nginx = dataclasses.replace(
        out.get_container(charm.NGINX),
        execs={testing.Exec(["nginx", "-c", charm.NGINX_CONF, "-t"], return_code=1, stderr="bad port")},
    )
    out = dataclasses.replace(out, containers={nginx, out.get_container(charm.JOBS)}, config={"port": 8080})
    out = ctx.run(ctx.on.config_changed(), out)
    assert out.unit_status == testing.BlockedStatus("nginx refuses the config: bad port")


def test_failing_health_check_is_blocked(ctx, cluster, content):
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[origin_relation()]))
    nginx = out.get_container(charm.NGINX)
    down = testing.CheckInfo(
        "nginx-up", level=pebble.CheckLevel.ALIVE, status=pebble.CheckStatus.DOWN, failures=3
    )
    nginx = dataclasses.replace(nginx, check_infos={down})
    out = ctx.run(
        ctx.on.update_status(), dataclasses.replace(out, containers={nginx, out.get_container(charm.JOBS)})
    )
    assert out.unit_status.message.startswith("nginx fails its health check")


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_on_juju_3_serves_https_and_reloads_on_renewal(content, cluster):
    ctx = testing.Context(charm.CdnCacheCharm, app_name=APP, juju_version="3.6.4")
    tls_rel = testing.Relation("certificates", remote_app_name="self-signed-certificates")
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[origin_relation(), tls_rel]))
    out = ctx.run(ctx.on.relation_created(out.get_relation(tls_rel.id)), out)
    assert out.unit_status.message.startswith(
        "HTTP :80, 0 files from http://10.0.2.10:80/; certificate requested"
    )
    requested = out.get_relation(tls_rel.id).local_unit_data
    assert "certificate_signing_requests" in requested
    authority = Authority()
    answered = dataclasses.replace(out.get_relation(tls_rel.id), remote_app_data=authority.answer(requested))
    out = ctx.run(
        ctx.on.relation_changed(answered),
        dataclasses.replace(out, relations={answered, *[r for r in out.relations if r.id != tls_rel.id]}),
    )
    assert out.unit_status.message.startswith("HTTPS :80, 0 files")
    conf = _nginx_conf(ctx, out)
    assert "listen 80 ssl;" in conf and "listen 8081;" in conf
    fs = out.get_container(charm.NGINX).get_filesystem(ctx)
    first = (fs / charm.CERT_FILE.lstrip("/")).read_text()
    assert "BEGIN CERTIFICATE" in first
    assert "PRIVATE KEY" in (fs / charm.KEY_FILE.lstrip("/")).read_text()
    # Renewal: a new certificate for the same request, written and reloaded.
    reloads = sum(e.command[-1] == "reload" for e in ctx.exec_history[charm.NGINX])
    renewed = dataclasses.replace(answered, remote_app_data=Authority().answer(requested))
    out = ctx.run(
        ctx.on.relation_changed(renewed),
        dataclasses.replace(out, relations={renewed, *[r for r in out.relations if r.id != tls_rel.id]}),
    )
    assert (fs / charm.CERT_FILE.lstrip("/")).read_text() != first
    assert sum(e.command[-1] == "reload" for e in ctx.exec_history[charm.NGINX]) == reloads + 1
    assert out.unit_status.message.startswith("HTTPS :80")


def test_tls_on_juju_2_9_serves_http_and_says_why(content, cluster):
    ctx = testing.Context(charm.CdnCacheCharm, app_name=APP, juju_version="2.9.43")
    tls_rel = testing.Relation("certificates", remote_app_name="self-signed-certificates")
    out = ctx.run(ctx.on.relation_created(tls_rel), state(content, relations=[origin_relation(), tls_rel]))
    out = ctx.run(ctx.on.config_changed(), out)
    assert out.unit_status == testing.ActiveStatus(
        "HTTP :80, 0 files from http://10.0.2.10:80/; HTTPS needs Juju 3 (secrets): serving HTTP; "
        "no L2S-M network"
    )
    assert out.get_relation(tls_rel.id).local_unit_data.get("certificate_signing_requests") is None
    assert "ssl" not in _nginx_conf(ctx, out)
