"""The actions: jobs started as Pebble services in the jobs container, results read from their
status files, refusals that change nothing."""

from __future__ import annotations

import dataclasses
import json

import charm
import pytest
from conftest import integrate_hint, origin_relation, state, status_dir
from ops import testing

DIGEST = "ab" * 32


@pytest.fixture
def settled(ctx, cluster, content):
    return ctx.run(ctx.on.config_changed(), state(content, relations=[origin_relation()]))


def _job(monkeypatch, content, job: str, status: dict):
    """The job, as the charm sees it: its status file appears while the action waits."""

    def sleep(_seconds):
        (status_dir(content) / f"{job}.json").write_text(json.dumps(status))

    monkeypatch.setattr(charm, "_sleep", sleep)


def _service(out, job):
    return out.get_container(charm.JOBS).plan.services[job]


def test_fetch_by_name_waits_for_the_result(ctx, settled, content, monkeypatch):
    done = {"state": "done", "name": "a.bin", "bytes": 1024, "total": 1024, "sha256": DIGEST}
    _job(monkeypatch, content, "fetch", {**done, "resumed-from": 512, "seconds": 0.5, "verified": True})
    out = ctx.run(ctx.on.action("fetch-content", params={"name": "a.bin", "wait": 5}), settled)
    assert ctx.action_results == {
        "name": "a.bin",
        "url": "http://10.0.2.10:80/a.bin",
        "state": "done",
        "bytes": "1024",
        "total": "1024",
        "sha256": DIGEST,
        "seconds": "0.5",
        "verified": "true",
        "resumed": "true",
        "resumed-from": "512",
    }
    command = _service(out, "fetch").command
    assert "--manifest=http://10.0.2.10:80/manifest.json" in command
    assert "--name=a.bin" in command and "--status=/var/lib/cdn-cache/fetch.json" in command
    assert out.get_container(charm.JOBS).service_statuses["fetch"].value == "active"


def test_fetch_by_url_with_a_rate_returns_once_started(ctx, settled, content):
    (status_dir(content) / "fetch.json").write_text(json.dumps({"state": "done", "name": "old"}))
    params = {"url": "http://10.0.2.10:80/v%20x.mp4", "rate-limit": "200k", "application-name": "cache"}
    params["url"] = "http://10.0.2.10:80/video.mp4"
    out = ctx.run(ctx.on.action("fetch-content", params=params), settled)
    # The last run's status file is gone: this run's is not there yet.
    assert ctx.action_results == {
        "name": "video.mp4",
        "url": "http://10.0.2.10:80/video.mp4",
        "state": "starting",
        "resumed": "false",
        "resumed-from": "0",
    }
    assert "--rate=200k" in _service(out, "fetch").command


def test_a_failed_fetch_fails_the_action(ctx, settled, content, monkeypatch):
    _job(monkeypatch, content, "fetch", {"state": "failed", "error": "'x.bin' is not listed", "bytes": 0})
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("fetch-content", params={"name": "x.bin", "wait": 3}), settled)
    assert (
        failed.value.message
        == "fetch of x.bin failed: 'x.bin' is not listed (0 bytes kept: run it again to resume)"
    )


def test_a_fetch_of_the_file_a_sync_is_fetching_is_refused(ctx, settled, content):
    out = ctx.run(ctx.on.action("sync-now"), settled)
    current = {"state": "running", "current": {"name": "a.bin", "bytes": 10}}
    (status_dir(content) / "sync-now.json").write_text(json.dumps(current))
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("fetch-content", params={"name": "a.bin"}), out)
    assert (
        failed.value.message == "parameter 'name': 'a.bin' is being fetched by the sync-now job: wait for it"
    )
    ctx.run(ctx.on.action("fetch-content", params={"name": "b.bin"}), out)  # another file: fine


def test_a_second_fetch_while_one_runs_is_refused(ctx, settled, content):
    out = ctx.run(ctx.on.action("fetch-content", params={"name": "a.bin"}), settled)
    (status_dir(content) / "fetch.json").write_text(json.dumps({"state": "running", "name": "a.bin"}))
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("fetch-content", params={"name": "b.bin"}), out)
    assert failed.value.message == "a fetch of a.bin is running: wait for it (list-content shows it)"


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, "give exactly one of parameter 'name'"),
        ({"name": "a.bin", "url": "http://10.0.2.10/a.bin"}, "give exactly one of parameter 'name'"),
        ({"name": "../etc"}, "parameter 'name': '../etc'"),
        ({"url": "ftp://x/a.bin"}, "parameter 'url': 'ftp://x/a.bin' is not an http(s) URL"),
        ({"url": "http://10.0.2.10/"}, "parameter 'url': its file name '' is not a content name"),
        ({"name": "a.bin", "rate-limit": "2g"}, "parameter 'rate-limit': '2g' is not a rate"),
        ({"name": "a.bin", "wait": 301}, "parameter 'wait'"),
    ],
)
def test_bad_fetch_params_fail_naming_them(ctx, settled, params, message):
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("fetch-content", params=params), settled)
    assert failed.value.message.startswith(message), failed.value.message


def test_fetch_without_origin_is_refused_with_the_hint(ctx, cluster, content, juju_version):
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("fetch-content", params={"name": "a.bin"}), state(content))
    assert failed.value.message == integrate_hint(juju_version)


def test_fetch_with_the_jobs_container_down_is_refused(ctx, cluster, content):
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(
            ctx.on.action("fetch-content", params={"name": "a.bin"}),
            state(content, relations=[origin_relation()], connect=False),
        )
    assert failed.value.message == "the jobs container is not up yet: try again in a moment"


def test_every_unit_answers_for_its_own_content(ctx, cluster, content):
    # Each unit has its own storage: a non-leader lists (and fetches, purges) its own files.
    ctx.run(ctx.on.action("list-content"), state(content, leader=False))
    assert "complete" in " ".join(ctx.action_results or {})


def test_list_content_keeps_partials_apart(ctx, settled, content):
    (content / "a.bin").write_bytes(b"a" * 10)
    (content / "b.bin").write_bytes(b"b" * 5)
    (content / "c.bin.partial").write_bytes(b"c" * 3)
    (content / ".c.bin.tmp").write_bytes(b"hidden")
    ctx.run(ctx.on.action("list-content"), settled)
    assert ctx.action_results == {
        "complete-count": "2",
        "complete-bytes": "15",
        "complete": "a.bin 10\nb.bin 5",
        "partial-count": "1",
        "partial": "c.bin 3",
    }


def test_purge_one_name_removes_complete_and_partial(ctx, settled, content):
    (content / "a.bin").write_bytes(b"a" * 10)
    (content / "a.bin.partial").write_bytes(b"a" * 4)
    (content / "b.bin").write_bytes(b"b" * 5)
    ctx.run(ctx.on.action("purge", params={"name": "a.bin"}), settled)
    assert ctx.action_results == {"removed": "a.bin", "removed-count": "1", "bytes-freed": "14"}
    assert sorted(p.name for p in content.iterdir()) == ["b.bin"]


def test_purge_all(ctx, settled, content):
    (content / "a.bin").write_bytes(b"a" * 10)
    (content / "c.bin.partial").write_bytes(b"c" * 3)
    ctx.run(ctx.on.action("purge", params={"all": True}), settled)
    assert ctx.action_results == {"removed": "a.bin c.bin", "removed-count": "2", "bytes-freed": "13"}
    assert list(content.iterdir()) == []


@pytest.mark.parametrize(
    "params, message",
    [
        ({"name": "nope.bin"}, "parameter 'name': 'nope.bin' is not in the cache"),
        ({}, "give exactly one of parameter 'name'"),
        ({"name": "a.bin", "all": True}, "give exactly one of parameter 'name'"),
    ],
)
def test_bad_purge_params_remove_nothing(ctx, settled, content, params, message):
    (content / "a.bin").write_bytes(b"a")
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("purge", params=params), settled)
    assert failed.value.message.startswith(message), failed.value.message
    assert [p.name for p in content.iterdir()] == ["a.bin"]


def test_purge_while_a_job_writes_is_refused(ctx, settled, content):
    (content / "a.bin.partial").write_bytes(b"a")
    out = ctx.run(ctx.on.action("fetch-content", params={"name": "a.bin"}), settled)
    (status_dir(content) / "fetch.json").write_text(json.dumps({"state": "running", "name": "a.bin"}))
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("purge", params={"all": True}), out)
    assert failed.value.message == "the fetch job is writing to the cache: purge once it is done"
    assert [p.name for p in content.iterdir()] == ["a.bin.partial"]


def test_sync_now_runs_one_round(ctx, settled, content, monkeypatch):
    _job(
        monkeypatch,
        content,
        "sync-now",
        {"state": "done", "listed": 3, "missing": 1, "fetched": 1, "error": None},
    )
    out = ctx.run(ctx.on.action("sync-now", params={"wait": 10}), settled)
    assert ctx.action_results == {
        "manifest": "http://10.0.2.10:80/manifest.json",
        "state": "done",
        "listed": "3",
        "missing": "1",
        "fetched": "1",
        "error": "",
    }
    assert "--interval=0" in _service(out, "sync-now").command
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("sync-now"), out)
    assert failed.value.message == "a sync-now round is running: wait for it"


def test_sync_now_stopped(ctx, settled, content, monkeypatch):
    _job(monkeypatch, content, "sync-now", {"state": "stopped", "error": "stopped by signal 15"})
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("sync-now", params={"wait": 2}), settled)
    assert failed.value.message == "sync-now stopped: stopped by signal 15"


def test_check_connectivity(ctx, settled, monkeypatch):
    calls = []
    monkeypatch.setattr(charm.probe, "ping", lambda *a, **k: calls.append(("ping", a, k)) or _Echo())
    monkeypatch.setattr(charm.probe, "traceroute", lambda *a, **k: calls.append(("trace", a, k)) or _Trace())
    ctx.run(ctx.on.action("check-connectivity", params={"target": "10.0.2.10", "count": 2}), settled)
    assert ctx.action_results["target"] == "10.0.2.10"
    assert ctx.action_results["received"] == "2"
    assert calls[0][2]["count"] == 2


@pytest.mark.parametrize(
    "params, name", [({"target": "origin.example"}, "target"), ({"target": "10.0.2.10", "count": 0}, "count")]
)
def test_check_connectivity_refuses_bad_params(ctx, settled, params, name):
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("check-connectivity", params=params), settled)
    assert f"'{name}'" in failed.value.message


@dataclasses.dataclass
class _Echo:
    sent: int = 2
    received: int = 2
    loss: float = 0.0
    ttl: int | None = 63
    rtt_min: float | None = 0.1
    rtt_avg: float | None = 0.2
    rtt_max: float | None = 0.3
    errors: tuple = ()


@dataclasses.dataclass
class _Trace:
    hops: tuple = ()
    reached: bool = True
    errors: tuple = ()
