"""The actions: jobs started as Pebble services in the jobs container, results read from their
status files, the manifest refreshed after them, refusals that change nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import charm
import pytest
from conftest import joined, state, status_dir
from ops import testing


@pytest.fixture
def settled(ctx, cluster, content):
    return joined(ctx, cluster, content)


def _job(monkeypatch, content, job: str, status: dict, data: bytes | None = None):
    """The job, as the charm sees it: its file and status file appear while the action waits."""

    def sleep(_seconds):
        if data is not None:
            (content / status["name"]).write_bytes(data)
        (status_dir(content) / f"{job}.json").write_text(json.dumps(status))

    monkeypatch.setattr(charm, "_sleep", sleep)


def _service(out, job):
    return out.get_container(charm.JOBS).plan.services[job]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(content) -> dict:
    return {f["name"]: f for f in json.loads((content / "manifest.json").read_text())["files"]}


def test_generate_waits_for_the_result_and_refreshes_the_manifest(ctx, settled, content, monkeypatch):
    data = b"g" * 2048
    digest = hashlib.sha256(data).hexdigest()
    done = {"state": "done", "name": "g.bin", "bytes": 2048, "total": 2048, "sha256": digest, "seconds": 0.1}
    _job(monkeypatch, content, "generate", done, data)
    out = ctx.run(
        ctx.on.action("generate-content", params={"name": "g.bin", "size": "2K", "wait": 5}), settled
    )
    assert ctx.action_results == {
        "name": "g.bin",
        "state": "done",
        "bytes": "2048",
        "total": "2048",
        "sha256": digest,
        "seconds": "0.1",
        "manifest": "refreshed",
    }
    assert _manifest(content)["g.bin"] == {"name": "g.bin", "bytes": 2048, "sha256": digest}
    command = _service(out, "generate").command
    assert "generate --dest=/srv/content --name=g.bin --size=2048" in command
    assert "--status=/var/lib/cdn-content-server/generate.json" in command
    assert out.get_container(charm.JOBS).service_statuses["generate"].value == "active"
    assert out.unit_status.message.startswith("HTTP :80, 1 files, 2048 bytes")


def test_generate_returns_once_started_and_the_manifest_follows_on_update_status(ctx, settled, content):
    (status_dir(content) / "generate.json").write_text(json.dumps({"state": "done", "name": "old"}))
    out = ctx.run(ctx.on.action("generate-content", params={"name": "g.bin", "size": "10"}), settled)
    # The last run's status file is gone: this run's is not there yet.
    assert ctx.action_results == {
        "name": "g.bin",
        "state": "starting",
        "manifest": "refreshed when the job ends (update-status, or list-content)",
    }
    (content / "g.bin").write_bytes(b"g" * 10)
    ctx.run(ctx.on.update_status(), out)
    assert _manifest(content)["g.bin"]["bytes"] == 10


def test_a_failed_job_fails_the_action(ctx, settled, content, monkeypatch):
    _job(monkeypatch, content, "generate", {"state": "failed", "name": "g.bin", "error": "No space left"})
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("generate-content", params={"name": "g.bin", "size": "1M", "wait": 3}), settled)
    assert failed.value.message == "generate of g.bin failed: No space left"


def test_a_second_job_while_one_runs_is_refused(ctx, settled, content):
    out = ctx.run(ctx.on.action("generate-content", params={"name": "a.bin", "size": "1M"}), settled)
    (status_dir(content) / "generate.json").write_text(json.dumps({"state": "running", "name": "a.bin"}))
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("generate-content", params={"name": "b.bin", "size": "1M"}), out)
    assert failed.value.message == "a generate job writing a.bin is running: wait for it"
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("add-content", params={"url": "http://192.0.2.1/a.bin"}), out)
    assert failed.value.message == "parameter 'name': 'a.bin' is being written by a running job: wait for it"
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("remove-content", params={"name": "a.bin"}), out)
    assert failed.value.message.startswith("parameter 'name': 'a.bin' is not in the content")
    (content / "a.bin.partial").write_bytes(b"a")
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("remove-content", params={"name": "a.bin"}), out)
    assert failed.value.message == "parameter 'name': 'a.bin' is being written by a running job: wait for it"
    assert (content / "a.bin.partial").exists()


def test_an_existing_name_is_refused(ctx, settled, content):
    (content / "a.bin").write_bytes(b"a")
    for action, params in (
        ("generate-content", {"name": "a.bin", "size": "1K"}),
        ("add-content", {"url": "http://192.0.2.1/x/a.bin"}),
    ):
        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action(action, params=params), settled)
        assert (
            failed.value.message
            == "parameter 'name': 'a.bin' is already in the content: remove-content it first"
        )


def test_add_content_names_the_file_after_the_url(ctx, settled, content, monkeypatch):
    data = b"v" * 100
    done = {"state": "done", "name": "v x.mp4", "bytes": 100, "total": 100, "attempts": 1}
    _job(monkeypatch, content, "fetch", done)
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("add-content", params={"url": "http://192.0.2.1/v%20x.mp4"}), settled)
    assert failed.value.message.startswith("parameter 'url': its file name 'v x.mp4'")
    assert failed.value.message.endswith("; or give parameter 'name'")
    done["name"] = "video.mp4"
    _job(monkeypatch, content, "fetch", done, data)
    params = {
        "url": "http://192.0.2.1/v%20x.mp4",
        "name": "video.mp4",
        "wait": 10,
        "application-name": "origin",
    }
    out = ctx.run(ctx.on.action("add-content", params=params), settled)
    assert ctx.action_results == {
        "name": "video.mp4",
        "url": "http://192.0.2.1/v%20x.mp4",
        "state": "done",
        "bytes": "100",
        "total": "100",
        "attempts": "1",
        "manifest": "refreshed",
    }
    command = _service(out, "fetch").command
    assert "fetch --url=http://192.0.2.1/v%20x.mp4 --dest=/srv/content --name=video.mp4" in command
    assert "--retries=5" in command
    assert _manifest(content)["video.mp4"]["bytes"] == 100


def test_a_done_job_whose_file_is_missing_says_so(ctx, settled, content, monkeypatch):
    _job(monkeypatch, content, "fetch", {"state": "done", "name": "a.bin"})
    ctx.run(ctx.on.action("add-content", params={"url": "http://192.0.2.1/a.bin", "wait": 1}), settled)
    assert ctx.action_results["manifest"] == "a.bin not listed"


def test_list_content_reads_the_manifest(ctx, settled, content):
    (content / "a.bin").write_bytes(b"a" * 10)
    (content / "b.bin").write_bytes(b"b" * 5)
    (content / "c.bin.partial").write_bytes(b"c" * 3)
    ctx.run(ctx.on.action("list-content"), settled)
    assert ctx.action_results == {
        "count": "2",
        "bytes": "15",
        "files": f"a.bin 10 {_sha(b'a' * 10)}\nb.bin 5 {_sha(b'b' * 5)}",
    }


def test_a_manifest_that_cannot_be_refreshed_fails_list_content(ctx, settled, content, monkeypatch):
    (content / "a.bin").write_bytes(b"a")
    monkeypatch.setattr(charm, "_write_manifest", lambda *_: None)
    (content / "manifest.json").write_text("not json")
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("list-content"), settled)
    assert failed.value.message.startswith("the manifest job wrote no readable /srv/content/manifest.json")


def test_remove_content_removes_the_file_and_its_partial(ctx, settled, content):
    (content / "a.bin").write_bytes(b"a" * 10)
    (content / "a.bin.partial").write_bytes(b"a" * 4)
    (content / "b.bin").write_bytes(b"b" * 5)
    ctx.run(ctx.on.action("remove-content", params={"name": "a.bin"}), settled)
    assert ctx.action_results == {"removed": "a.bin", "bytes-freed": "10", "count": "1"}
    assert sorted(p.name for p in content.iterdir()) == ["b.bin", "manifest.json"]
    assert list(_manifest(content)) == ["b.bin"]


def test_remove_content_of_a_partial_only(ctx, settled, content):
    (content / "a.bin.partial").write_bytes(b"a" * 4)
    ctx.run(ctx.on.action("remove-content", params={"name": "a.bin"}), settled)
    assert ctx.action_results == {"removed": "a.bin", "bytes-freed": "0", "count": "0"}
    assert not (content / "a.bin.partial").exists()


def test_every_unit_answers_for_its_own_content(ctx, cluster, content):
    (content / "a.bin").write_bytes(b"a")
    ctx.run(ctx.on.action("list-content"), state(content, leader=False))
    assert ctx.action_results["count"] == "1"


def test_the_jobs_container_down_refuses(ctx, cluster, content):
    for action, params in (
        ("generate-content", {"name": "a.bin", "size": "1K"}),
        ("add-content", {"url": "http://192.0.2.1/a.bin"}),
        ("list-content", {}),
        ("remove-content", {"name": "a.bin"}),
    ):
        with pytest.raises(testing.ActionFailed) as failed:
            ctx.run(ctx.on.action(action, params=params), state(content, connect=False))
        assert failed.value.message == "the jobs container is not up yet: try again in a moment"


def test_check_connectivity(ctx, settled, monkeypatch):
    calls = []
    monkeypatch.setattr(charm.probe, "ping", lambda *a, **k: calls.append(("ping", a, k)) or _Echo())
    monkeypatch.setattr(charm.probe, "traceroute", lambda *a, **k: calls.append(("trace", a, k)) or _Trace())
    ctx.run(ctx.on.action("check-connectivity", params={"target": "10.0.3.10", "count": 2}), settled)
    assert ctx.action_results["target"] == "10.0.3.10"
    assert ctx.action_results["received"] == "2"
    assert calls[0][2]["count"] == 2


@pytest.mark.parametrize(
    "action, params, message",
    [
        ("generate-content", {"size": "1M"}, "parameter 'name': Field required"),
        ("generate-content", {"name": "../etc", "size": "1M"}, "parameter 'name': '../etc'"),
        ("generate-content", {"name": "a.bin", "size": "1T"}, "parameter 'size': '1T' is not a size"),
        ("generate-content", {"name": "a.bin", "size": "65G"}, "parameter 'size': '65G' is too large"),
        ("generate-content", {"name": "a.bin", "size": "1M", "wait": 301}, "parameter 'wait'"),
        ("generate-content", {"name": "a.bin", "size": "1M", "wait": -1}, "parameter 'wait'"),
        ("add-content", {"url": "ftp://x/a.bin"}, "parameter 'url': 'ftp://x/a.bin' is not an http(s) URL"),
        ("add-content", {"url": "http://192.0.2.1/"}, "parameter 'url': its file name ''"),
        ("add-content", {"url": "http://192.0.2.1/a", "name": "a/b"}, "parameter 'name': 'a/b'"),
        ("remove-content", {"name": ".."}, "parameter 'name': '..'"),
        ("remove-content", {"name": "absent.bin"}, "parameter 'name': 'absent.bin' is not in the content"),
        ("check-connectivity", {"target": "origin.example"}, "parameter 'target'"),
        ("check-connectivity", {"target": "10.0.2.1", "count": 0}, "parameter 'count'"),
    ],
)
def test_bad_params_fail_naming_them(ctx, settled, action, params, message):
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action(action, params=params), settled)
    assert failed.value.message.startswith(message), failed.value.message


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
