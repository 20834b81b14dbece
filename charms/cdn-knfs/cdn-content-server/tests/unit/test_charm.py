"""The origin's wiring: the nginx layer and config, the manifest kept true, the origin
relation's URLs, and the status on every path, on both Jujus."""

from __future__ import annotations

import dataclasses
import json

import charm
import pytest
from conftest import ADDRESS, APP, containers, joined, net_b, origin_relation, state, status_dir
from ops import pebble, testing

from l2sm_core.cdn.origin import OriginProviderAppData
from l2sm_knf.databag import decode


def _nginx_conf(ctx, out) -> str:
    fs = out.get_container(charm.NGINX).get_filesystem(ctx)
    return (fs / charm.NGINX_CONF.lstrip("/")).read_text()


def _published(out, relation) -> OriginProviderAppData:
    return decode(out.get_relation(relation.id).local_app_data, OriginProviderAppData)


def test_without_a_network_serves_but_publishes_nothing_and_says_why(ctx, cluster, content, juju_version):
    (content / "a.bin").write_bytes(b"a" * 10)
    rel = origin_relation()
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[rel]))
    verb = "relate" if juju_version.startswith("2.") else "integrate"
    assert out.unit_status == testing.BlockedStatus(
        "HTTP :80, 1 files, 10 bytes; no L2S-M network address to publish on 'origin': "
        f"join a network (juju {verb} {APP}:networks <l2sm-network>)"
    )
    assert out.get_relation(rel.id).local_app_data == {}
    nginx = out.get_container(charm.NGINX)
    assert nginx.plan.services[charm.NGINX].startup == "enabled"
    assert nginx.plan.checks["nginx-up"].http == {"url": "http://localhost:80/healthz"}
    assert nginx.service_statuses[charm.NGINX].value == "active"
    conf = _nginx_conf(ctx, out)
    assert "listen 80;" in conf and "autoindex off;" in conf and "daemon off;" in conf
    assert (nginx.get_filesystem(ctx) / charm.RUNTIME_DIR.lstrip("/")).is_dir()
    # The manifest is next to the files, and the jobs' code in the jobs container.
    assert json.loads((content / "manifest.json").read_text())["files"][0]["name"] == "a.bin"
    fs = out.get_container(charm.JOBS).get_filesystem(ctx)
    assert (fs / "opt/l2sm/l2sm_core/cdn/jobs.py").is_file()


def test_on_a_network_the_leader_publishes_its_urls(ctx, cluster, content):
    rel = origin_relation()
    out = joined(ctx, cluster, content, relations=[rel])
    assert out.unit_status == testing.ActiveStatus(
        f"HTTP :80, 0 files, 0 bytes at http://{ADDRESS}:80/; net-b {ADDRESS}/24 on net1"
    )
    assert _published(out, rel) == OriginProviderAppData(urls=[f"http://{ADDRESS}:80/"])
    assert out.get_relation(rel.id).local_app_data == {
        "manifest": '"manifest.json"',
        "urls": f'["http://{ADDRESS}:80/"]',
    }


def test_a_cache_joining_later_gets_the_urls_kept_from_the_network_events(ctx, cluster, content):
    out = joined(ctx, cluster, content)
    rel = origin_relation()
    # relation-created: a dispatch the KNF library does not reconcile (no memberships read).
    out = ctx.run(ctx.on.relation_created(rel), dataclasses.replace(out, relations={*out.relations, rel}))
    assert _published(out, rel).urls == [f"http://{ADDRESS}:80/"]


def test_a_non_leader_publishes_nothing(ctx, cluster, content):
    rel = origin_relation()
    out = joined(ctx, cluster, content, relations=[rel])  # the leader patched the pod template
    blank = dataclasses.replace(out.get_relation(rel.id), local_app_data={})
    out = ctx.run(
        ctx.on.update_status(),
        dataclasses.replace(
            out, leader=False, relations={*[r for r in out.relations if r.id != rel.id], blank}
        ),
    )
    assert out.get_relation(rel.id).local_app_data == {}
    assert out.unit_status.name == "active"


def test_the_network_gone_withdraws_the_urls(ctx, cluster, content):
    rel = origin_relation()
    out = joined(ctx, cluster, content, relations=[rel])
    network = next(r for r in out.relations if r.endpoint == "networks")
    out = ctx.run(ctx.on.relation_broken(network), out)
    cluster.restart_pods()
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(out, relations={out.get_relation(rel.id)}))
    assert out.get_relation(rel.id).local_app_data == {}
    assert out.unit_status.name == "blocked"


def test_options_port_rate_limit_autoindex(ctx, cluster, content):
    rel = origin_relation()
    config = {"port": 8080, "rate-limit": "5m", "autoindex": True}
    out = joined(ctx, cluster, content, relations=[rel], config=config)
    conf = _nginx_conf(ctx, out)
    assert "listen 8080;" in conf and "autoindex on;" in conf and f"limit_rate {5 * 1024 * 1024};" in conf
    assert _published(out, rel).urls == [f"http://{ADDRESS}:8080/"]
    assert out.get_container(charm.NGINX).plan.checks["nginx-up"].http == {
        "url": "http://localhost:8080/healthz"
    }
    assert "rate-limit 5m" in out.unit_status.message


def test_waiting_for_the_network_passes_the_librarys_status(ctx, cluster, content):
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[net_b()]))
    assert out.unit_status == testing.MaintenanceStatus("restarting pods to change their L2S-M networks")


@pytest.mark.parametrize(
    "config, message",
    [
        ({"rate-limit": "2g"}, "option 'rate-limit': '2g' is not a rate"),
        ({"port": 0}, "option 'port': 0 is not a TCP port"),
        ({"port": 70000}, "option 'port'"),
    ],
)
def test_a_bad_option_is_blocked_naming_it_and_changes_nothing(ctx, cluster, content, config, message):
    rel = origin_relation()
    out = joined(ctx, cluster, content, relations=[rel])
    before = (out.get_container(charm.NGINX).plan, _nginx_conf(ctx, out), out.get_relation(rel.id))
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config=config))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(message), out.unit_status.message
    assert (out.get_container(charm.NGINX).plan, _nginx_conf(ctx, out), out.get_relation(rel.id)) == before


def test_a_bad_addresses_option_is_the_librarys_to_name(ctx, cluster, content):
    out = ctx.run(ctx.on.config_changed(), state(content, relations=[net_b()], config={"addresses": "x"}))
    assert out.unit_status.name == "blocked"
    assert "addresses" in out.unit_status.message


def test_containers_not_up_yet_wait(ctx, cluster, content):
    out = ctx.run(ctx.on.config_changed(), state(content, connect=False))
    assert out.unit_status == testing.WaitingStatus("waiting for the nginx container")


def test_the_jobs_container_not_up_yet_waits(ctx, cluster, content):
    nginx, jobs = containers(content)
    jobs = dataclasses.replace(jobs, can_connect=False)
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(state(content), containers={nginx, jobs}))
    assert out.unit_status == testing.WaitingStatus("waiting for the jobs container")


def test_config_change_reloads_a_running_nginx_and_the_same_config_does_nothing(ctx, cluster, content):
    out = joined(ctx, cluster, content)
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"rate-limit": "1m"}))
    commands = [e.command for e in ctx.exec_history[charm.NGINX]]
    assert commands[-2:] == [
        ["nginx", "-c", charm.NGINX_CONF, "-t", "-q"],
        ["nginx", "-c", charm.NGINX_CONF, "-s", "reload"],
    ]
    before = (len(ctx.exec_history[charm.NGINX]), out.get_container(charm.NGINX).plan)
    out = ctx.run(ctx.on.update_status(), out)
    assert (len(ctx.exec_history[charm.NGINX]), out.get_container(charm.NGINX).plan) == before


def test_a_stopped_nginx_is_started_again(ctx, cluster, content):
    out = joined(ctx, cluster, content)
    nginx = dataclasses.replace(
        out.get_container(charm.NGINX), service_statuses={charm.NGINX: pebble.ServiceStatus.INACTIVE}
    )
    out = ctx.run(
        ctx.on.pebble_ready(nginx),
        dataclasses.replace(out, containers={nginx, out.get_container(charm.JOBS)}),
    )
    assert out.get_container(charm.NGINX).service_statuses[charm.NGINX].value == "active"


def test_a_config_nginx_refuses_is_blocked(ctx, cluster, content):
    out = joined(ctx, cluster, content)
    nginx = dataclasses.replace(
        out.get_container(charm.NGINX),
        execs={testing.Exec(["nginx", "-c", charm.NGINX_CONF, "-t"], return_code=1, stderr="bad port")},
    )
    out = dataclasses.replace(out, containers={nginx, out.get_container(charm.JOBS)}, config={"port": 8080})
    out = ctx.run(ctx.on.config_changed(), out)
    assert out.unit_status == testing.BlockedStatus("nginx refuses the config: bad port")


def test_failing_health_check_is_blocked(ctx, cluster, content):
    out = joined(ctx, cluster, content)
    down = testing.CheckInfo(
        "nginx-up", level=pebble.CheckLevel.ALIVE, status=pebble.CheckStatus.DOWN, failures=3
    )
    nginx = dataclasses.replace(out.get_container(charm.NGINX), check_infos={down})
    out = ctx.run(
        ctx.on.update_status(), dataclasses.replace(out, containers={nginx, out.get_container(charm.JOBS)})
    )
    assert out.unit_status.message.startswith("nginx fails its health check")


# -- the manifest ------------------------------------------------------------------------------


def test_the_manifest_is_refreshed_only_when_the_listing_changes(ctx, cluster, content, manifest_job):
    out = joined(ctx, cluster, content)
    runs = len(manifest_job)
    assert manifest_job[0] == ["python3", "/opt/l2sm/l2sm_core/cdn/jobs.py", "manifest", "--dir=/srv/content"]
    out = ctx.run(ctx.on.update_status(), out)
    assert len(manifest_job) == runs
    # A file arrived (a job the action did not wait for), another is half there.
    (content / "b.bin").write_bytes(b"b" * 4)
    (content / "c.bin.partial").write_bytes(b"c")
    (content / "bad name").write_bytes(b"x")
    out = ctx.run(ctx.on.update_status(), out)
    assert len(manifest_job) == runs + 1
    assert out.unit_status.message.startswith("HTTP :80, 1 files, 4 bytes")
    out = ctx.run(ctx.on.update_status(), out)
    assert len(manifest_job) == runs + 1


def test_a_stale_manifest_shows_until_the_next_hook(ctx, cluster, content, monkeypatch):
    out = joined(ctx, cluster, content)
    (content / "b.bin").write_bytes(b"b")
    monkeypatch.setattr(
        charm, "_write_manifest", lambda *_: (_ for _ in ()).throw(pebble.TimeoutError("slow"))
    )
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == testing.BlockedStatus(
        "the manifest job did not finish: slow (tried again on the next hook)"
    )
    # An action does not reconcile: its dispatch's status shows the manifest as pending.
    (content / "c.bin").write_bytes(b"c")
    monkeypatch.setattr(charm.probe, "check", lambda target, count: {"target": target})
    out = ctx.run(ctx.on.action("check-connectivity", params={"target": "10.0.2.1"}), out)
    assert out.unit_status.message.startswith("HTTP :80, manifest refreshed on the next hook at ")


def test_the_manifest_exec_in_the_jobs_container(ctx, cluster, content, monkeypatch):
    monkeypatch.undo()  # the real exec: ops.testing's Exec writes no manifest
    nginx, jobs = containers(content)
    failing = dataclasses.replace(
        jobs, execs={testing.Exec(["python3"], return_code=1, stderr="manifest: /srv/content: no such dir")}
    )
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(state(content), containers={nginx, failing}))
    assert out.unit_status == testing.BlockedStatus(
        "the manifest job failed: manifest: /srv/content: no such dir"
    )
    command = ctx.exec_history[charm.JOBS][-1].command
    assert command == ["python3", "/opt/l2sm/l2sm_core/cdn/jobs.py", "manifest", "--dir=/srv/content"]
    silent = dataclasses.replace(jobs, execs={testing.Exec(["python3"], return_code=0)})
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(state(content), containers={nginx, silent}))
    assert out.unit_status == testing.BlockedStatus(
        "the manifest job wrote no readable /srv/content/manifest.json: see `juju debug-log`"
    )


def test_a_running_job_shows_its_progress(ctx, cluster, content):
    out = ctx.run(
        ctx.on.action("generate-content", params={"name": "g.bin", "size": "1M"}),
        joined(ctx, cluster, content),
    )
    (status_dir(content) / "generate.json").write_text(
        json.dumps({"state": "running", "name": "g.bin", "bytes": 1024, "total": 1048576})
    )
    out = ctx.run(ctx.on.update_status(), out)
    assert "generate g.bin: 1024/1048576 bytes" in out.unit_status.message
