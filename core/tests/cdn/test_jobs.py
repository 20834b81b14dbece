"""The CDN jobs against a real nginx on loopback: full, cut and resumed, stalled, corrupted,
range-ignoring and mis-sized downloads, and a cache syncing from its origin's manifest."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from l2sm_core.cdn import content, jobs

MIB = 1024 * 1024

NGINX = Path("/usr/sbin/nginx")
# A 2 MiB file takes half a second at /slow/: time enough to cut it, short for the suite.
SLOW_RATE = "4m"
_LOG_FORMAT = "$status $request_uri range=$http_range sent=$body_bytes_sent"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx in the foreground, one process (kill it and every connection drops; SIGSTOP
    it and transfers stall), serving `root` at / (full speed), /slow/ (limit_rate) and
    /norange/ (max_ranges 0: answers a range request with the whole file)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "origin"
        self.root.mkdir()
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (base / "nginx").mkdir()

    def _config(self) -> str:
        run = self.base / "nginx"
        temps = "\n".join(
            f"  {kind}_temp_path {run / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""
daemon off;
master_process off;
pid {run}/nginx.pid;
error_log {run}/error.log info;
events {{ worker_connections 64; }}
http {{
  log_format t '{_LOG_FORMAT}';
  access_log {run}/access.log t;
{temps}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.root};
    location /slow/ {{ alias {self.root}/; limit_rate {SLOW_RATE}; }}
    location /norange/ {{ alias {self.root}/; max_ranges 0; }}
  }}
}}
"""

    def start(self) -> None:
        conf = self.base / "nginx" / "nginx.conf"
        conf.write_text(self._config())
        self.proc = subprocess.Popen(
            [
                str(NGINX),
                "-p",
                str(self.base / "nginx"),
                "-c",
                str(conf),
                "-e",
                str(self.base / "nginx" / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.base / 'nginx' / 'error.log').read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("nginx did not listen within 5 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot die
            self.proc.kill()
            self.proc.wait(timeout=5)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def requests(self) -> list[str]:
        """The access log, one line per request: `status uri range=... sent=...`."""
        log = self.base / "nginx" / "access.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def nginx(tmp_path: Path):
    if not NGINX.exists():
        pytest.skip(f"{NGINX} is missing: `make sysdeps` installs the pinned nginx")
    server = Nginx(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def job_script(tmp_path: Path) -> Path:
    """The files job_files() names, copied as the charm pushes them into the workload."""
    root = tmp_path / "opt"
    for rel, source in jobs.job_files().items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return root / "l2sm_core" / "cdn" / "jobs.py"


def start_job(script: Path, *args: str) -> subprocess.Popen[str]:
    """Run a job as the workload container does: `python -S` (no site-packages, so no
    pydantic and not this checkout) and the pushed script's path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.Popen(
        [sys.executable, "-S", str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=script.parents[3],
    )


def wait_for(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _origin_file(server: Nginx, name: str, size: int) -> tuple[bytes, str]:
    data = os.urandom(size)
    (server.root / name).write_bytes(data)
    return data, hashlib.sha256(data).hexdigest()


def _status(path: Path) -> dict:
    return json.loads(path.read_text())


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


# -- (a) a full fetch ---------


@pytest.mark.slow
def test_full_fetch_verifies_and_renames(nginx, tmp_path, capsys):
    data, digest = _origin_file(nginx, "a.bin", 300_000)
    cache, status = tmp_path / "cache", tmp_path / "run" / "fetch.json"
    argv = ["fetch", f"--url={nginx.url('a.bin')}", f"--dest={cache}", "--name=a.bin"]
    argv += [f"--expect-bytes={len(data)}", f"--expect-sha256={digest}", f"--status={status}"]
    assert jobs.main(argv) == 0
    assert (cache / "a.bin").read_bytes() == data
    assert not (cache / "a.bin.partial").exists()
    assert (cache / "a.bin").stat().st_mode & 0o777 == 0o644  # nginx, another user, serves it
    result = _status(status)
    assert result["state"] == "done" and result["error"] is None
    assert result["sha256"] == digest and result["verified"] is True
    assert result["bytes"] == result["total"] == len(data)
    assert result["resumed-from"] == 0 and result["attempts"] == 1
    assert json.loads(capsys.readouterr().out) == result  # the result on stdout too
    # Again, with the file in place and verified: nothing is fetched.
    before = len(nginx.requests())
    assert jobs.main(argv) == 0
    assert _status(status)["already"] is True
    assert len(nginx.requests()) == before


@pytest.mark.slow
def test_fetch_without_expectations_checks_the_announced_size(nginx, tmp_path):
    data, digest = _origin_file(nginx, "b.bin", 10_000)
    result = jobs.fetch(nginx.url("b.bin"), tmp_path / "cache", "b.bin")
    assert result.sha256 == digest and not result.verified and result.size == len(data)


# -- (b) cut mid-transfer, then resumed ---------


@pytest.mark.slow
def test_killing_the_server_mid_transfer_then_resuming(nginx, tmp_path, job_script):
    data, digest = _origin_file(nginx, "big.bin", 2 * MIB)
    cache, status = tmp_path / "cache", tmp_path / "fetch.json"
    partial = cache / "big.bin.partial"
    job = start_job(
        job_script, "fetch", f"--url={nginx.url('slow/big.bin')}", f"--dest={cache}", "--name=big.bin",
        f"--expect-sha256={digest}", f"--status={status}", "--timeout=5",
    )  # fmt: skip
    try:
        wait_for(lambda: _size(partial) >= MIB, what="the transfer to get going")
        running = _status(status)
        nginx.kill()
        _, err = job.communicate(timeout=10)
    finally:
        job.kill()
    assert running["state"] == "running" and running["pid"] == job.pid
    assert job.returncode == 1, err
    failed = _status(status)
    assert failed["state"] == "failed" and "cut" in failed["error"]
    cut_at = _size(partial)
    assert 0 < cut_at < len(data)
    assert not (cache / "big.bin").exists()

    nginx.start()
    argv = ["fetch", f"--url={nginx.url('slow/big.bin')}", f"--dest={cache}", "--name=big.bin"]
    assert jobs.main([*argv, f"--expect-sha256={digest}", f"--status={status}"]) == 0
    done = _status(status)
    assert done["state"] == "done" and done["resumed-from"] == cut_at and not done["range-ignored"]
    assert done["sha256"] == digest
    assert (cache / "big.bin").read_bytes() == data
    assert nginx.requests()[-1].startswith(f"206 /slow/big.bin range=bytes={cut_at}- ")


@pytest.mark.slow
def test_killing_the_fetch_then_resuming_from_the_manifest(nginx, tmp_path, job_script):
    data, digest = _origin_file(nginx, "big.bin", MIB)
    content.write_manifest(nginx.root)
    cache, status = tmp_path / "cache", tmp_path / "fetch.json"
    partial = cache / "big.bin.partial"
    # The job's own rate limit makes it slow: 512 KiB/s.
    job = start_job(
        job_script, "fetch", f"--url={nginx.url('big.bin')}", f"--dest={cache}", "--name=big.bin",
        "--rate=512k", f"--status={status}",
    )  # fmt: skip
    try:
        wait_for(lambda: _size(partial) >= 200_000, what="some bytes")
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=5)
    finally:
        job.kill()
    cut_at = _size(partial)
    assert 0 < cut_at < len(data)
    # A killed job cannot say so: its status still says running, with the dead pid.
    assert _status(status)["state"] == "running"

    result = jobs.fetch(nginx.url("big.bin"), cache, "big.bin", manifest_url=nginx.url("manifest.json"))
    assert result.resumed_from == cut_at and result.verified and result.sha256 == digest
    assert (cache / "big.bin").read_bytes() == data


@pytest.mark.slow
def test_a_stall_is_noticed_and_retried_from_where_it_stopped(nginx, tmp_path, capsys):
    _, digest = _origin_file(nginx, "big.bin", 2 * MIB)
    cache = tmp_path / "cache"
    partial = cache / "big.bin.partial"

    def stall():
        wait_for(lambda: _size(partial) >= 0.5 * MIB, what="the transfer to get going")
        nginx.pause()
        time.sleep(0.6)
        nginx.resume()

    staller = threading.Thread(target=stall)
    staller.start()
    status = jobs.Status(tmp_path / "fetch.json", "fetch")
    try:
        result = jobs.fetch(
            nginx.url("slow/big.bin"), cache, "big.bin", expect_sha256=digest,
            timeout=0.3, retries=6, retry_wait=0.1, status=status,
        )  # fmt: skip
    finally:
        staller.join()
    assert result.attempts >= 2 and result.resumed_from > 0 and result.sha256 == digest
    assert "no data for 0.3 s: the transfer stalled; attempt 2" in capsys.readouterr().err
    assert _status(tmp_path / "fetch.json")["attempts"] == result.attempts


# -- (c) a corrupt partial ---------


@pytest.mark.slow
def test_a_corrupt_partial_is_caught_and_never_served(nginx, tmp_path):
    data, digest = _origin_file(nginx, "a.bin", 200_000)
    cache, status = tmp_path / "cache", tmp_path / "fetch.json"
    cache.mkdir()
    spoiled = bytearray(data[:120_000])
    spoiled[1000] ^= 0xFF
    (cache / "a.bin.partial").write_bytes(spoiled)
    argv = ["fetch", f"--url={nginx.url('a.bin')}", f"--dest={cache}", "--name=a.bin"]
    assert jobs.main([*argv, f"--expect-sha256={digest}", f"--status={status}"]) == 1
    failed = _status(status)
    assert failed["state"] == "failed" and "SHA-256 mismatch" in failed["error"]
    assert "120000 bytes left by an earlier run" in failed["error"]
    assert failed["resumed-from"] == 120_000
    assert not (cache / "a.bin").exists() and not (cache / "a.bin.partial").exists()
    assert nginx.requests()[-1].startswith("206 /a.bin range=bytes=120000-")
    # The next try starts over and succeeds.
    assert jobs.main([*argv, f"--expect-sha256={digest}"]) == 0
    assert (cache / "a.bin").read_bytes() == data


@pytest.mark.slow
def test_an_origin_file_unlike_its_manifest_is_refused(nginx, tmp_path):
    _origin_file(nginx, "a.bin", 50_000)
    content.write_manifest(nginx.root)
    _origin_file(nginx, "a.bin", 50_000)  # changed since the manifest was written
    with pytest.raises(jobs.JobError, match="SHA-256 mismatch"):
        jobs.fetch(nginx.url("a.bin"), tmp_path, "a.bin", manifest_url=nginx.url("manifest.json"))
    assert not (tmp_path / "a.bin").exists()
    with pytest.raises(jobs.JobError, match="not listed in the manifest"):
        jobs.fetch(nginx.url("b.bin"), tmp_path, "b.bin", manifest_url=nginx.url("manifest.json"))
    with pytest.raises(jobs.JobError, match="not both"):
        jobs.fetch(
            nginx.url("a.bin"), tmp_path, "a.bin", expect_size=1, manifest_url=nginx.url("manifest.json")
        )


# -- (d) a server that ignores Range; a partial that was complete ---------


@pytest.mark.slow
def test_a_server_ignoring_range_restarts_cleanly(nginx, tmp_path):
    data, digest = _origin_file(nginx, "a.bin", 200_000)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "a.bin.partial").write_bytes(data[:70_000])
    result = jobs.fetch(nginx.url("norange/a.bin"), cache, "a.bin", expect_sha256=digest)
    assert result.range_ignored and result.resumed_from == 0 and result.sha256 == digest
    assert (cache / "a.bin").read_bytes() == data
    assert nginx.requests()[-1].startswith("200 /norange/a.bin range=bytes=70000- sent=200000")


@pytest.mark.slow
def test_a_complete_partial_is_finished_on_416(nginx, tmp_path):
    data, digest = _origin_file(nginx, "a.bin", 100_000)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "a.bin.partial").write_bytes(data)  # killed between the last byte and the rename
    result = jobs.fetch(nginx.url("a.bin"), cache, "a.bin", expect_size=len(data), expect_sha256=digest)
    assert result.resumed_from == len(data) and (cache / "a.bin").read_bytes() == data
    assert nginx.requests()[-1].startswith("416 /a.bin range=bytes=100000-")


# -- (e) the wrong size ---------


@pytest.mark.slow
def test_a_wrong_expected_size_fails_without_a_file(nginx, tmp_path):
    data, _ = _origin_file(nginx, "a.bin", 100_000)
    cache, status = tmp_path / "cache", tmp_path / "fetch.json"
    for expected in (len(data) + 1, len(data) - 1):
        argv = ["fetch", f"--url={nginx.url('a.bin')}", f"--dest={cache}", "--name=a.bin"]
        assert jobs.main([*argv, f"--expect-bytes={expected}", f"--status={status}"]) == 1
        error = _status(status)["error"]
        assert f"the origin has {len(data)} bytes, expected {expected}" in error
        assert not (cache / "a.bin").exists()


@pytest.mark.slow
def test_a_partial_longer_than_expected_is_started_over(nginx, tmp_path):
    data, digest = _origin_file(nginx, "a.bin", 100_000)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "a.bin.partial").write_bytes(os.urandom(150_000))
    result = jobs.fetch(nginx.url("a.bin"), cache, "a.bin", expect_size=len(data), expect_sha256=digest)
    assert result.resumed_from == 0 and (cache / "a.bin").read_bytes() == data


@pytest.mark.slow
def test_missing_files_and_refused_connections(nginx, tmp_path):
    with pytest.raises(jobs.JobError, match="HTTP 404") as info:
        jobs.fetch(nginx.url("nothing.bin"), tmp_path, "nothing.bin", retries=3)
    assert not info.value.retryable
    nginx.kill()
    status = jobs.Status(None, "fetch")
    with pytest.raises(jobs.JobError, match="cannot connect") as info:
        jobs.fetch(nginx.url("a.bin"), tmp_path, "a.bin", retries=1, retry_wait=0.01, status=status)
    assert info.value.retryable and status.data["attempts"] == 2


# -- (f) sync ---------


@pytest.mark.slow
def test_sync_fetches_what_the_cache_lacks_or_holds_stale(nginx, tmp_path, monkeypatch):
    files = {
        name: _origin_file(nginx, name, size)
        for name, size in [("a.bin", 70_000), ("b.bin", 5), ("c.txt", 0)]
    }
    assert jobs.main(["manifest", f"--dir={nginx.root}"]) == 0
    cache, status = tmp_path / "cache", tmp_path / "sync.json"
    cache.mkdir()
    (cache / "b.bin").write_bytes(b"older")  # stale: same size, other bytes
    (cache / "c.txt").write_bytes(b"")  # up to date
    (cache / "mine.bin").write_bytes(b"x")  # the cache's own: left alone
    url = nginx.url("manifest.json")
    assert jobs.main(["sync", f"--origin-manifest={url}", f"--dest={cache}", f"--status={status}"]) == 0
    result = _status(status)
    assert result["state"] == "done" and result["error"] is None and result["next-round"] is None
    assert (result["listed"], result["missing"], result["stale"], result["extra"]) == (3, 1, 1, 1)
    assert result["fetched"] == 2 and result["failed"] == 0 and result["bytes"] == 70_005
    for name, (data, _) in files.items():
        assert (cache / name).read_bytes() == data
    assert (cache / "mine.bin").read_bytes() == b"x"

    # Every interval: the origin changes between rounds and the cache follows.
    sleeps: list[float] = []

    def between_rounds(seconds: float) -> None:
        sleeps.append(seconds)
        files["b.bin"] = _origin_file(nginx, "b.bin", 9)
        content.write_manifest(nginx.root)

    monkeypatch.setattr(jobs.time, "sleep", between_rounds)
    last = jobs.sync(url, cache, interval=30, rounds=2, status=jobs.Status(status, "sync"))
    assert sleeps == [30] and last.number == 2 and last.ok
    assert last.fetched == ["b.bin"] and last.stale == 1
    assert (cache / "b.bin").read_bytes() == files["b.bin"][0]


@pytest.mark.slow
def test_sync_reports_what_failed(nginx, tmp_path):
    _origin_file(nginx, "a.bin", 1000)
    _origin_file(nginx, "b.bin", 1000)
    content.write_manifest(nginx.root)
    _origin_file(nginx, "a.bin", 1000)  # no longer what the manifest says
    cache, status = tmp_path / "cache", tmp_path / "sync.json"
    url = nginx.url("manifest.json")
    assert jobs.main(["sync", f"--origin-manifest={url}", f"--dest={cache}", f"--status={status}"]) == 1
    result = _status(status)
    assert result["state"] == "failed" and result["fetched"] == 1 and result["failed"] == 1
    assert "SHA-256 mismatch" in result["failures"]["a.bin"]
    assert result["error"].startswith("1 of 2 files failed, first a.bin: ")
    assert not (cache / "a.bin").exists() and (cache / "b.bin").exists()
    # No manifest at all: the round fails, saying why.
    assert jobs.main(["sync", f"--origin-manifest={nginx.url('none.json')}", f"--dest={cache}"]) == 1


@pytest.mark.slow
def test_sync_for_ever_stops_on_sigterm(nginx, tmp_path, job_script):
    _origin_file(nginx, "a.bin", 1000)
    content.write_manifest(nginx.root)
    cache, status = tmp_path / "cache", tmp_path / "sync.json"
    job = start_job(
        job_script, "sync", f"--origin-manifest={nginx.url('manifest.json')}", f"--dest={cache}",
        "--interval=60", f"--status={status}",
    )  # fmt: skip
    try:
        wait_for(lambda: status.exists() and _status(status).get("next-round") is not None, what="a round")
        assert _status(status)["state"] == "done" and (cache / "a.bin").exists()
        job.send_signal(signal.SIGTERM)
        job.wait(timeout=5)
    finally:
        job.kill()
    assert job.returncode == 128 + signal.SIGTERM
    stopped = _status(status)
    assert stopped["state"] == "stopped" and "signal" in stopped["error"]


# -- generate and manifest ---------


def test_generate_writes_random_content_through_a_partial(tmp_path, capsys):
    status = tmp_path / "gen.json"
    assert (
        jobs.main(["generate", f"--dest={tmp_path / 'c'}", "--name=r.bin", "--size=1M", f"--status={status}"])
        == 0
    )
    data = (tmp_path / "c" / "r.bin").read_bytes()
    result = _status(status)
    assert len(data) == MIB == result["bytes"] == result["total"]
    assert result["sha256"] == hashlib.sha256(data).hexdigest() and result["state"] == "done"
    assert not (tmp_path / "c" / "r.bin.partial").exists()
    # Generated again: replaced, atomically, by other bytes.
    assert jobs.generate(tmp_path / "c", "r.bin", 1000).size == 1000
    assert len((tmp_path / "c" / "r.bin").read_bytes()) == 1000


def test_manifest_command(tmp_path, capsys):
    (tmp_path / "a.bin").write_bytes(b"a")
    (tmp_path / "b c.bin").write_bytes(b"b")
    assert jobs.main(["manifest", f"--dir={tmp_path}"]) == 0
    captured = capsys.readouterr()
    assert "'b c.bin' left out" in captured.err
    summary = json.loads(captured.out)
    assert summary["files"] == 1 and summary["skipped"] == 1 and summary["bytes"] == 1
    manifest = content.parse_manifest((tmp_path / "manifest.json").read_bytes())
    assert [e.name for e in manifest.entries] == ["a.bin"]
    assert jobs.main(["manifest", f"--dir={tmp_path}", f"--out={tmp_path / 'elsewhere.json'}"]) == 0
    assert content.parse_manifest((tmp_path / "elsewhere.json").read_bytes()) == manifest
    assert jobs.main(["manifest", f"--dir={tmp_path / 'none'}"]) == 1  # a missing directory


def test_a_second_job_on_the_same_file_is_refused(tmp_path):
    with jobs._Partial(tmp_path / "a.bin.partial"), pytest.raises(jobs.JobError, match="another job"):
        jobs.generate(tmp_path, "a.bin", 10)


# -- the command line ---------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["fetch", "--url=ftp://h/a", "--dest=/tmp/x", "--name=a"],
            "argument --url: 'ftp://h/a' is not an http",
        ),
        (["fetch", "--url=http://u:p@h/a", "--dest=/tmp/x", "--name=a"], "carries credentials"),
        (["fetch", "--url=http://h/a", "--dest=/tmp/x", "--name=../etc/passwd"], "argument --name: "),
        (["fetch", "--url=http://h/a", "--dest=/tmp/x", "--name=.hidden"], "starts with '.'"),
        (["fetch", "--url=http://h/a", "--dest=/tmp/x", "--name=a.partial"], "downloads in progress"),
        (["fetch", "--url=http://h/a", "--dest=/tmp/x", "--name=a", "--rate=1g"], "write 1024m"),
        (["fetch", "--url=http://h/a", "--dest=/tmp/x", "--name=a", "--expect-sha256=AB"], "SHA-256"),
        (["fetch", "--url=http://h/a", "--dest=/tmp/x", "--name=a", "--timeout=0"], "not a timeout"),
        (["fetch", "--url=http://h/a", "--dest=/tmp/x", "--name=a", "--retries=many"], "retries"),
        (["fetch", "--url=http://h/a", "--dest=", "--name=a"], "not a path"),
        (["fetch", "--url=http://h/a", "--dest=/tmp/x", "--name=a", "--timeout=soon"], "not a timeout"),
        (["generate", "--dest=/tmp/x", "--name=a", "--size=1.5M"], "1536K"),
        (["generate", "--dest=/tmp/x", "--name=a", "--size=65G"], "at most 64G"),
        (["sync", "--origin-manifest=http://h/m.json", "--dest=/tmp/x", "--interval=86401"], "0-86400"),
        (["sync", "--origin-manifest=http://h/m.json", "--dest=/tmp/x", "--interval=5m"], "not an interval"),
        (["sync", "--origin-manifest=file:///etc/passwd", "--dest=/tmp/x"], "not an http"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        jobs.main(args)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not Path("/tmp/x").exists()


def test_a_bad_value_given_to_the_functions_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="not an http"):
        jobs.fetch("ftp://h/a", tmp_path, "a")
    with pytest.raises(ValueError, match="content name"):
        jobs.generate(tmp_path, "a b", 10)
    with pytest.raises(ValueError, match="interval"):
        jobs.sync("http://127.0.0.1:9/m.json", tmp_path, interval=-1)


def test_job_command_quotes_what_pebble_splits():
    line = jobs.job_command("fetch", url="http://10.0.1.10/a b", dest="/srv/content", name="a.bin", rate=None)
    assert shlex.split(line) == [
        "python3",
        "/opt/l2sm/l2sm_core/cdn/jobs.py",
        "fetch",
        "--url=http://10.0.1.10/a b",
        "--dest=/srv/content",
        "--name=a.bin",
    ]
    assert set(jobs.job_files()) == set(jobs.JOB_MODULES)
    assert all(path.is_file() for path in jobs.job_files().values())


@pytest.mark.slow
def test_the_jobs_run_without_pydantic_both_ways(job_script):
    # As a plain script (what the charm runs) ...
    job = start_job(job_script, "--help")
    out, err = job.communicate(timeout=10)
    assert job.returncode == 0, err
    assert "fetch" in out and "sync" in out
    # ... and as a module, with the pushed root on the path.
    code = (
        "import sys, l2sm_core.cdn.jobs; assert 'pydantic' not in sys.modules; "
        "print(sys.modules['l2sm_core'].__file__)"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(job_script.parents[2])}
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(job_script.parents[2]))


# -- servers that misbehave (http.server on loopback) ---------

_BODY = bytes(range(256)) * 4  # 1024 bytes


class _Odd(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # no Content-Length: the body ends when the connection closes

    def log_message(self, format, *args):
        pass

    def _send(self, code: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        ranged = self.headers.get("Range")
        offset = int(ranged.removeprefix("bytes=").rstrip("-")) if ranged else 0
        full = {"Content-Length": str(len(_BODY))}
        answers = {
            "/gzip": (200, {**full, "Content-Encoding": "gzip"}, _BODY),
            "/nolength": (200, {}, _BODY),
            "/moved-start": (206, {"Content-Range": f"bytes 0-1023/{len(_BODY)}", **full}, _BODY),
            "/short-range": (
                206,
                {"Content-Range": f"bytes {offset}-{offset + 9}/1024"},
                _BODY[offset : offset + 10],
            ),
            "/no-content-range": (206, {}, _BODY[offset:]),
            "/503": (503, {"Content-Length": "0"}, b""),
            "/204": (204, {}, b""),
            "/big-manifest": (200, {"Content-Length": str(content.MAX_MANIFEST_BYTES + 1)}, b""),
            "/long-manifest": (200, {}, b" " * (content.MAX_MANIFEST_BYTES + 1)),
            "/cut-manifest": (200, {"Content-Length": "100"}, b'{"schema": 1'),
            "/bad-manifest": (200, {}, b'{"schema": 2, "files": []}'),
            "/cut": (200, full, _BODY[:100]),
        }
        if self.path == "/hang-up":
            self.close_connection = True  # no answer at all
            return None
        if self.path == "/late":
            time.sleep(0.3)
            return self._send(200, full, _BODY)
        if self.path == "/chunked-cut":
            self._send(200, {"Transfer-Encoding": "chunked"}, b"400\r\n" + _BODY[:10])
            return None
        if self.path == "/shrunk":
            if ranged:
                return self._send(416, {"Content-Range": "bytes */10", "Content-Length": "0"})
            return self._send(200, {"Content-Length": "10"}, _BODY[:10])
        self._send(*answers[self.path])


@pytest.fixture
def odd():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_misbehaving_servers(odd, tmp_path):
    digest = hashlib.sha256(_BODY).hexdigest()
    with pytest.raises(jobs.JobError, match="'gzip' encoded"):
        jobs.fetch(f"{odd}/gzip", tmp_path, "a")
    # No length announced: the end of the connection is the end of the file ...
    assert jobs.fetch(f"{odd}/nolength", tmp_path, "a", expect_sha256=digest).size == len(_BODY)
    # ... unless it is longer than expected (deleted) or shorter (kept, to resume).
    with pytest.raises(jobs.JobError, match="more than the 1000 bytes"):
        jobs.fetch(f"{odd}/nolength", tmp_path, "b", expect_size=1000)
    assert not (tmp_path / "b.partial").exists()
    with pytest.raises(jobs.JobError, match="cut at byte 1024 of 2000") as info:
        jobs.fetch(f"{odd}/nolength", tmp_path, "c", expect_size=2000)
    assert info.value.retryable and _size(tmp_path / "c.partial") == 1024
    with pytest.raises(jobs.JobError, match="cut after 100 of 1024 bytes"):
        jobs.fetch(f"{odd}/cut", tmp_path, "d")
    # Partial answers that do not continue our partial file.
    for path, match in [
        ("moved-start", "from 0"),
        ("short-range", "not the rest"),
        ("no-content-range", "without a usable Content-Range"),
    ]:
        (tmp_path / "e.partial").write_bytes(_BODY[:100])
        with pytest.raises(jobs.JobError, match=match):
            jobs.fetch(f"{odd}/{path}", tmp_path, "e")
    # The origin's file shrank below our partial: started over.
    (tmp_path / "f.partial").write_bytes(_BODY[:500])
    assert jobs.fetch(f"{odd}/shrunk", tmp_path, "f").size == 10
    (tmp_path / "f.partial").write_bytes(_BODY[:10])
    with pytest.raises(jobs.JobError, match="origin has 10 bytes, expected 11"):
        jobs.fetch(f"{odd}/shrunk", tmp_path, "f", expect_size=11)
    with pytest.raises(jobs.JobError, match="HTTP 503") as info:
        jobs.fetch(f"{odd}/503", tmp_path, "g")
    assert info.value.retryable
    with pytest.raises(jobs.JobError, match="unexpected HTTP 204"):
        jobs.fetch(f"{odd}/204", tmp_path, "g")


def test_manifests_from_misbehaving_servers(odd):
    for path, match in [
        ("big-manifest", "more than a manifest may be"),
        ("long-manifest", "more than a manifest may be"),
        ("cut-manifest", "cut after"),
        ("bad-manifest", "schema 2"),
        ("503", "HTTP 503"),
    ]:
        with pytest.raises(jobs.JobError, match=match):
            jobs.load_manifest(f"{odd}/{path}")


def test_connections_that_fail_in_other_ways(odd, tmp_path):
    with pytest.raises(jobs.JobError, match="connection failed") as info:
        jobs.fetch(f"{odd}/hang-up", tmp_path, "a")
    assert info.value.retryable
    with pytest.raises(jobs.JobError, match=r"no answer within 0\.1 s"):
        jobs.fetch(f"{odd}/late", tmp_path, "a", timeout=0.1)
    with pytest.raises(jobs.JobError, match="transfer cut: IncompleteRead"):
        jobs.fetch(f"{odd}/chunked-cut", tmp_path, "a")
    with pytest.raises(jobs.JobError, match="unknown url type"):
        jobs._open("no-scheme", {}, 1)


def test_the_client_side_rate_limit_holds(odd, tmp_path):
    started = time.monotonic()
    result = jobs.fetch(f"{odd}/nolength", tmp_path, "a", rate=4096)  # 1024 bytes: a quarter second
    assert result.size == len(_BODY) and time.monotonic() - started >= 0.2


@pytest.mark.slow
def test_sigterm_stops_a_fetch_and_keeps_its_partial(nginx, tmp_path):
    _, digest = _origin_file(nginx, "big.bin", 2 * MIB)
    partial, status = tmp_path / "big.bin.partial", tmp_path / "fetch.json"
    returned = threading.Event()

    def terminate():
        wait_for(lambda: _size(partial) >= MIB / 4, what="some bytes")
        if not returned.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    killer = threading.Thread(target=terminate)
    killer.start()
    argv = ["fetch", f"--url={nginx.url('slow/big.bin')}", f"--dest={tmp_path}", "--name=big.bin"]
    try:
        code = jobs.main(
            [*argv, f"--status={status}", "--timeout=5", "--retries=2", f"--expect-sha256={digest}"]
        )
    finally:
        returned.set()
        killer.join()
    assert code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # put back
    stopped = _status(status)
    assert stopped["state"] == "stopped" and stopped["error"] == "stopped by signal 15"
    assert 0 < _size(partial) < 2 * MIB and not (tmp_path / "big.bin").exists()


def test_main_outside_the_main_thread_leaves_signals_alone(tmp_path):
    codes = []
    worker = threading.Thread(
        target=lambda: codes.append(jobs.main(["generate", f"--dest={tmp_path}", "--name=a", "--size=1"]))
    )
    worker.start()
    worker.join()
    assert codes == [0] and (tmp_path / "a").stat().st_size == 1


def test_runs_as_a_plain_script(monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "argv", ["jobs.py", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(jobs.__file__, run_name="__main__")
    assert info.value.code == 0 and "resumable, verified download" in capsys.readouterr().out
    assert sys.path[0] == str(Path(jobs.__file__).resolve().parents[2])
