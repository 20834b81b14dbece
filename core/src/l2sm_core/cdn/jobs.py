"""The CDN's long-running work, run under Pebble in a workload container: `fetch` (a
resumable, verified download), `generate` (random test content), `manifest` and `sync` (a
cache following its origin's manifest).

Stdlib only, on purpose: this runs in a `python:3.x-slim` container next to the workload,
not in the charm's virtualenv. It imports values.py and content.py, which are stdlib-only
at import time too (values' pydantic types are built only when a charm asks for one); keep
it that way, a test runs the jobs with `python -S` to prove it. The charm pushes
job_files() under one root and runs, e.g.

    python3 /opt/l2sm/l2sm_core/cdn/jobs.py fetch --url=... --dest=/srv/content --name=a.bin

(`python3 -m l2sm_core.cdn.jobs` works as well with the root on PYTHONPATH); job_command()
builds such command lines.

Exit codes: 0 done; 1 failed (stderr and the status file say why); 2 bad arguments;
143 stopped by SIGTERM (Pebble stopping the service: a partial download is kept, and the
next fetch resumes it).

`--status FILE` is JSON, replaced atomically (a reader never sees half of it), keys spelt
as Juju action results want them (lowercase, dashes) so an action can hand them on; the
final status is also printed as one JSON line on stdout. A job killed with SIGKILL cannot
say so: its status stays `running`, with its `pid`.
  every job: command, state (running | done | failed | stopped), pid, seconds, updated,
    error (null, or why it failed; while retrying, why the last attempt failed)
  fetch: name, url, path, bytes (in the file so far), total (expected size, null if
    unknown), resumed-from (where the last attempt started), range-ignored (the server
    answered a range request with the whole file), attempts, sha256 (of what arrived),
    expected-sha256, verified (the digest matched an expected one), already (the file was
    there, verified, so nothing was fetched)
  generate: name, path, bytes, total, sha256
  manifest (stdout only): files, bytes, skipped (files left out, named on stderr), out
  sync: manifest, round, listed, missing, stale, extra, fetched, failed, failures
    ({name: error}, the first 10), bytes (fetched this round), round-seconds, current (the
    fetch in progress, with the keys above, or null), next-round (when, or null)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import fcntl
import hashlib
import http.client
import json
import os
import pathlib
import re
import shlex
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

if __package__ in (None, ""):
    # Run as a plain script (python3 /opt/l2sm/l2sm_core/cdn/jobs.py): its package root is two up.
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from l2sm_core.cdn import content, values

JOB_ROOT = "/opt/l2sm"
# What the workload container needs, relative to the package root.
JOB_MODULES = (
    "l2sm_core/__init__.py",
    "l2sm_core/cdn/__init__.py",
    "l2sm_core/cdn/values.py",
    "l2sm_core/cdn/content.py",
    "l2sm_core/cdn/jobs.py",
)
USER_AGENT = "l2sm-cdn-jobs/1"
CHUNK = 64 * 1024
GENERATE_CHUNK = 1024 * 1024
# No byte for this long and a transfer is stalled: it is dropped and resumed with a range
# request (a cut link loses the connection's packets; TCP alone would wait minutes).
DEFAULT_TIMEOUT = 10.0
PROGRESS_EVERY = 0.5  # seconds between status writes while bytes flow
MAX_RETRY_WAIT = 60.0
MAX_FAILURES_SHOWN = 10
EXIT_FAILED = 1
EXIT_STOPPED = 128 + signal.SIGTERM

_CONTENT_RANGE = re.compile(r"bytes ([0-9]{1,20})-([0-9]{1,20})/([0-9]{1,20}|\*)", re.ASCII)
_UNSATISFIED_RANGE = re.compile(r"bytes \*/([0-9]{1,20})", re.ASCII)


def job_files() -> dict[str, pathlib.Path]:
    """The files to push into the workload container: {path under the root: local file}."""
    root = pathlib.Path(__file__).resolve().parents[2]
    return {rel: root / rel for rel in JOB_MODULES}


def job_command(command: str, *, root: str = JOB_ROOT, python: str = "python3", **options: Any) -> str:
    """The command line Pebble runs, shell-quoted: job_command("sync", origin_manifest=url,
    dest="/srv/content", interval=300). Options given None are left out."""
    argv = [python, f"{root}/l2sm_core/cdn/jobs.py", command]
    # --key=value: a value starting with '-' is never taken for an option.
    argv += [f"--{key.replace('_', '-')}={value}" for key, value in options.items() if value is not None]
    return shlex.join(argv)


class JobError(Exception):
    """A job failed; `retryable` when trying again (resuming) may succeed: a cut, a stall,
    a 5xx. The message says what happened, for the status file and the operator."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Stopped(BaseException):
    """SIGTERM. A BaseException, so no job loop mistakes it for a failure to retry."""


def _log(command: str, message: str) -> None:
    # Pebble keeps the service's output: one line per event, never per chunk.
    print(f"{command}: {message}", file=sys.stderr, flush=True)


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def _now() -> str:
    return _when(time.time())


class Status:
    """A job's progress and result as JSON at `path` (None: kept in memory only). While
    bytes flow it is written at most every PROGRESS_EVERY seconds; `force` writes now."""

    def __init__(self, path: str | os.PathLike[str] | None, command: str) -> None:
        self.path = pathlib.Path(path) if path else None
        self.data: dict[str, Any] = {
            "command": command,
            "state": "running",
            "pid": os.getpid(),
            "error": None,
        }
        self._parent: Status | None = None
        self._key = ""
        self._started = time.monotonic()
        self._written = float("-inf")

    def nested(self, key: str, command: str) -> Status:
        """A status kept under `key` of this one (sync's `current` fetch)."""
        child = Status(None, command)
        del child.data["pid"]
        child._parent, child._key = self, key
        self.data[key] = child.data
        return child

    def update(self, fields: dict[str, Any] | None = None, *, force: bool = False) -> None:
        if fields:
            self.data.update(fields)
        self.data["seconds"] = round(time.monotonic() - self._started, 3)
        if self._parent is not None:
            if self._parent.data.get(self._key) is self.data:  # not yet replaced by the next file
                self._parent.update(force=force)
            return
        now = time.monotonic()
        if self.path is None or (not force and now - self._written < PROGRESS_EVERY):
            return
        self.data["updated"] = _now()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        content.atomic_write(self.path, (json.dumps(self.data, sort_keys=True) + "\n").encode())
        self._written = now


# -- HTTP ---------


def _open(url: str, headers: dict[str, str], timeout: float) -> http.client.HTTPResponse:
    """GET url. HTTPError (a status >= 400) is left to the caller; the rest becomes JobError."""
    # No proxies: the origin is reached over the CDN's own network, never through whatever
    # http_proxy the container inherited.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except urllib.error.URLError as exc:
        raise JobError(f"{url}: cannot connect: {exc.reason}", retryable=True) from None
    except TimeoutError:
        raise JobError(f"{url}: no answer within {timeout:g} s", retryable=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise JobError(f"{url}: connection failed: {exc!r}", retryable=True) from None
    except ValueError as exc:  # http.client refuses some URLs itself
        raise JobError(f"{url}: {exc}") from None


def _http_error(url: str, exc: urllib.error.HTTPError) -> JobError:
    # 5xx, 408 and 429 may pass; 404 and the other 4xx will not.
    retryable = exc.code >= 500 or exc.code in (408, 429)
    return JobError(f"{url}: HTTP {exc.code} {exc.reason}", retryable=retryable)


def _read(response: http.client.HTTPResponse, size: int, url: str, timeout: float) -> bytes:
    try:
        return response.read(size)
    except TimeoutError:
        raise JobError(f"{url}: no data for {timeout:g} s: the transfer stalled", retryable=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise JobError(f"{url}: transfer cut: {exc!r}", retryable=True) from None


def _int_header(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def load_manifest(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> content.Manifest:
    """An origin's manifest, fetched and read strictly (at most MAX_MANIFEST_BYTES)."""
    limit = content.MAX_MANIFEST_BYTES
    try:
        response = _open(url, {"Accept-Encoding": "identity"}, timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            raise _http_error(url, exc) from None
    with response:
        length = _int_header(response.headers.get("Content-Length"))
        if length is not None and length > limit:
            raise JobError(f"{url}: {length} bytes is more than a manifest may be ({limit})")
        data = _read(response, limit + 1, url, timeout)
    if len(data) > limit:
        raise JobError(f"{url}: more than {limit} bytes is more than a manifest may be")
    if length is not None and len(data) < length:
        raise JobError(f"{url}: cut after {len(data)} of {length} bytes", retryable=True)
    try:
        return content.parse_manifest(data)
    except ValueError as exc:
        raise JobError(f"{url}: {exc}") from None


# -- the partial file ---------


class _Partial:
    """NAME.partial, locked against a second job, appended to and hashed in step: the
    digest is ready the moment the last byte lands, and a resume hashes what is there."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.size = 0
        self._digest = hashlib.sha256()
        self._fd = -1

    def __enter__(self) -> _Partial:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JobError(f"another job is writing {self.path.name}") from None
        self._fd = fd
        while block := os.pread(fd, content.CHUNK, self.size):
            self._digest.update(block)
            self.size += len(block)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)

    def write(self, block: bytes) -> None:
        view = memoryview(block)
        while view:
            view = view[os.write(self._fd, view) :]
        self._digest.update(block)
        self.size += len(block)

    def restart(self) -> None:
        os.ftruncate(self._fd, 0)
        self._digest = hashlib.sha256()
        self.size = 0

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def discard(self) -> None:
        self.restart()
        self.path.unlink(missing_ok=True)

    def complete(self, final: pathlib.Path) -> None:
        """Make the partial the file, atomically: readers see the old file or the new one."""
        os.fsync(self._fd)
        os.fchmod(self._fd, 0o644)  # nginx, another user, serves it
        os.replace(self.path, final)
        _fsync_dir(final.parent)


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)


# -- fetch ---------


@dataclasses.dataclass(frozen=True)
class FetchResult:
    name: str
    path: pathlib.Path
    size: int
    sha256: str
    resumed_from: int = 0
    range_ignored: bool = False
    attempts: int = 0
    verified: bool = False
    already: bool = False


@dataclasses.dataclass
class _Transfer:
    url: str
    partial: _Partial
    expect_size: int | None
    rate: int
    timeout: float
    status: Status
    resumed_from: int = 0
    range_ignored: bool = False
    total: int | None = None


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    name: str,
    *,
    rate: int | str = 0,
    expect_size: int | None = None,
    expect_sha256: str | None = None,
    manifest_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 0,
    retry_wait: float = 1.0,
    status: Status | None = None,
) -> FetchResult:
    """Download `url` to DEST/NAME through DEST/NAME.partial, resuming a partial left by an
    earlier run. The file appears only complete and verified: its size against
    `expect_size` (or what the server announced) and its SHA-256 against `expect_sha256`
    (or the entry in the manifest at `manifest_url`). A digest mismatch deletes the
    partial. Raises JobError; `retries` more attempts follow a retryable failure, each
    resuming where the last stopped."""
    url, name, rate = values.http_url(url), values.content_name(name), values.rate(rate)
    expect_size = None if expect_size is None else values.byte_count(expect_size)
    expect_sha256 = None if expect_sha256 is None else values.sha256_hex(expect_sha256)
    status = status or Status(None, "fetch")
    final = pathlib.Path(dest) / name
    status.update({"name": name, "url": url, "path": str(final), "bytes": 0, "total": expect_size})
    status.update({"resumed-from": 0, "range-ignored": False, "attempts": 0, "sha256": None})
    status.update({"expected-sha256": expect_sha256, "verified": False, "already": False}, force=True)
    if manifest_url is not None:
        if expect_size is not None or expect_sha256 is not None:
            raise JobError("give the expected size and digest or a manifest, not both")
        entry = load_manifest(manifest_url, timeout=timeout).get(name)
        if entry is None:
            raise JobError(f"{name!r} is not listed in the manifest at {manifest_url}")
        expect_size, expect_sha256 = entry.size, entry.sha256
        status.update({"total": expect_size, "expected-sha256": expect_sha256}, force=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    if expect_sha256 is not None and final.is_file() and not final.is_symlink():
        size, digest = content.sha256_file(final)
        if digest == expect_sha256 and expect_size in (None, size):
            status.update({"bytes": size, "total": size, "sha256": digest, "verified": True, "already": True})
            return FetchResult(name, final, size, digest, verified=True, already=True)
    with _Partial(final.with_name(name + values.PARTIAL_SUFFIX)) as partial:
        transfer = _Transfer(url, partial, expect_size, rate, timeout, status)
        attempt = 0
        while True:
            attempt += 1
            status.update({"attempts": attempt, "bytes": partial.size}, force=True)
            try:
                _attempt(transfer)
                break
            except JobError as exc:
                if not exc.retryable or attempt > retries:
                    raise
                wait = min(retry_wait * 2 ** (attempt - 1), MAX_RETRY_WAIT)
                _log("fetch", f"{exc}; attempt {attempt + 1} in {wait:g} s, from byte {partial.size}")
                status.update({"error": f"attempt {attempt}: {exc}"}, force=True)
                time.sleep(wait)
        digest = partial.hexdigest()
        status.update({"bytes": partial.size, "sha256": digest})
        if expect_sha256 is not None and digest != expect_sha256:
            resumed = transfer.resumed_from
            partial.discard()
            cause = (
                f" (it resumed {resumed} bytes left by an earlier run: were they corrupt?)" if resumed else ""
            )
            raise JobError(
                f"{name}: SHA-256 mismatch: got {digest}, expected {expect_sha256}{cause}; "
                "the download was deleted, fetch again to start over"
            )
        partial.complete(final)
    status.update({"total": partial.size, "verified": expect_sha256 is not None, "error": None})
    return FetchResult(
        name,
        final,
        partial.size,
        digest,
        resumed_from=transfer.resumed_from,
        range_ignored=transfer.range_ignored,
        attempts=attempt,
        verified=expect_sha256 is not None,
    )


def _attempt(t: _Transfer) -> None:
    """One request, from where the partial ends; returns once the partial is complete."""
    partial, offset = t.partial, t.partial.size
    if t.expect_size is not None and offset > t.expect_size:
        _log("fetch", f"{partial.path.name} is longer than the expected {t.expect_size} bytes: starting over")
        partial.restart()
        offset = 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = _open(t.url, headers, t.timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code != 416 or not offset:
                raise _http_error(t.url, exc) from None
            match = _UNSATISFIED_RANGE.fullmatch(exc.headers.get("Content-Range") or "")
            if match and int(match[1]) == offset:
                if t.expect_size is not None and offset != t.expect_size:
                    raise JobError(
                        f"{t.url}: the origin has {offset} bytes, expected {t.expect_size}"
                    ) from None
                t.resumed_from, t.total = offset, offset  # the partial was complete already
                return
        # The file at the origin is shorter than our partial: it changed. Start over, now.
        _log("fetch", f"{t.url}: the origin has fewer than {offset} bytes: starting over")
        partial.restart()
        _attempt(t)
        return
    with response:
        length = _int_header(response.headers.get("Content-Length"))
        if response.status == 206 and offset:
            t.total = _check_range(t.url, response.headers.get("Content-Range"), offset, length)
            t.resumed_from, t.range_ignored = offset, False
        elif response.status == 200:
            t.total, t.resumed_from, t.range_ignored = length, 0, offset > 0
            if offset:
                _log("fetch", f"{t.url}: the server sent the whole file, not bytes {offset}-: starting over")
                partial.restart()
        else:
            raise JobError(f"{t.url}: unexpected HTTP {response.status} {response.reason}")
        if t.expect_size is not None and t.total is not None and t.total != t.expect_size:
            raise JobError(f"{t.url}: the origin has {t.total} bytes, expected {t.expect_size}")
        encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise JobError(f"{t.url}: the server sent {encoding!r} encoded data, not the file itself")
        t.status.update({"resumed-from": t.resumed_from, "range-ignored": t.range_ignored}, force=True)
        if t.status.data.get("total") is None:
            t.status.update({"total": t.total})
        if offset and t.resumed_from:
            _log("fetch", f"{t.url}: resuming from byte {offset}")
        received = _stream(t, response)
    if length is not None and received < length:
        raise JobError(f"{t.url}: cut after {received} of {length} bytes", retryable=True)
    expected = t.expect_size if t.expect_size is not None else t.total
    if expected is not None and partial.size < expected:
        raise JobError(f"{t.url}: cut at byte {partial.size} of {expected}", retryable=True)


def _check_range(url: str, header: str | None, offset: int, length: int | None) -> int | None:
    match = _CONTENT_RANGE.fullmatch(header or "")
    if not match:
        raise JobError(f"{url}: a partial answer without a usable Content-Range ({header!r:.60})")
    start, end = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if start != offset:
        raise JobError(f"{url}: asked for bytes from {offset}, the server sent them from {start}")
    if (total is not None and end != total - 1) or (length is not None and length != end - start + 1):
        raise JobError(f"{url}: the server sent bytes {start}-{end} of {total}, not the rest of the file")
    return total


def _stream(t: _Transfer, response: http.client.HTTPResponse) -> int:
    # A sleep-based limit: ten reads a second at the rate asked, so the average holds.
    chunk = min(CHUNK, max(1, t.rate // 10)) if t.rate else CHUNK
    limit = t.expect_size if t.expect_size is not None else t.total
    started, received = time.monotonic(), 0
    while block := _read(response, chunk, t.url, t.timeout):
        if limit is not None and t.partial.size + len(block) > limit:
            t.partial.discard()
            raise JobError(f"{t.url}: the server sent more than the {limit} bytes expected; download deleted")
        t.partial.write(block)
        received += len(block)
        t.status.update({"bytes": t.partial.size})
        if t.rate:
            delay = started + received / t.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return received


# -- generate ---------


def generate(
    dest: str | os.PathLike[str], name: str, size: int | str, *, status: Status | None = None
) -> FetchResult:
    """DEST/NAME of `size` random bytes, written through DEST/NAME.partial (so never served
    half written) and hashed while written. Replaces an existing file."""
    name, size = values.content_name(name), values.size(size)
    status = status or Status(None, "generate")
    final = pathlib.Path(dest) / name
    status.update({"name": name, "path": str(final), "bytes": 0, "total": size, "sha256": None}, force=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    with _Partial(final.with_name(name + values.PARTIAL_SUFFIX)) as partial:
        partial.restart()
        while partial.size < size:
            partial.write(os.urandom(min(GENERATE_CHUNK, size - partial.size)))
            status.update({"bytes": partial.size})
        digest = partial.hexdigest()
        partial.complete(final)
    status.update({"bytes": size, "sha256": digest})
    return FetchResult(name, final, size, digest)


# -- sync ---------


@dataclasses.dataclass
class SyncRound:
    number: int
    listed: int = 0
    missing: int = 0
    stale: int = 0
    extra: int = 0
    fetched: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    bytes: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed

    def fields(self) -> dict[str, Any]:
        failures = dict(list(self.failed.items())[:MAX_FAILURES_SHOWN])
        error = self.error
        if error is None and self.failed:
            name, why = next(iter(self.failed.items()))
            error = f"{len(self.failed)} of {self.missing + self.stale} files failed, first {name}: {why}"
        return {
            "round": self.number,
            "listed": self.listed,
            "missing": self.missing,
            "stale": self.stale,
            "extra": self.extra,
            "fetched": len(self.fetched),
            "failed": len(self.failed),
            "failures": failures,
            "bytes": self.bytes,
            "error": error,
        }


def sync(
    manifest_url: str,
    dest: str | os.PathLike[str],
    *,
    interval: int = 0,
    rate: int | str = 0,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = 0,
    retry_wait: float = 1.0,
    status: Status | None = None,
    rounds: int | None = None,
) -> SyncRound:
    """Fetch every file the origin's manifest lists that DEST lacks or holds stale (URLs
    relative to the manifest's), verified against the manifest. Once (`interval` 0), or
    every `interval` seconds for ever (or `rounds` times). Files DEST has and the origin
    does not are left alone (counted as `extra`). Returns the last round."""
    manifest_url, interval, rate = values.http_url(manifest_url), values.interval(interval), values.rate(rate)
    status = status or Status(None, "sync")
    directory = pathlib.Path(dest)
    directory.mkdir(parents=True, exist_ok=True)
    known: content.HashCache = {}  # digests of what DEST holds, kept between rounds
    number = 0
    while True:
        number += 1
        started = time.monotonic()
        status.update({"state": "running", "manifest": manifest_url, "next-round": None}, force=True)
        result = _sync_round(
            number, manifest_url, directory, known, status, rate, timeout, retries, retry_wait
        )
        last = rounds is not None and number >= rounds
        following = None if interval == 0 or last else time.time() + interval
        status.update(result.fields())
        status.update(
            {
                "state": "done" if result.ok else "failed",
                "current": None,
                "round-seconds": round(time.monotonic() - started, 3),
                "next-round": None if following is None else _when(following),
            },
            force=True,
        )
        _log("sync", json.dumps(result.fields(), sort_keys=True))
        if following is None:
            return result
        time.sleep(interval)


def _sync_round(
    number: int,
    manifest_url: str,
    directory: pathlib.Path,
    known: content.HashCache,
    status: Status,
    rate: int,
    timeout: float,
    retries: int,
    retry_wait: float,
) -> SyncRound:
    result = SyncRound(number)
    status.update({**result.fields(), "current": None}, force=True)
    try:
        origin = load_manifest(manifest_url, timeout=timeout)
    except JobError as exc:
        result.error = str(exc)
        return result
    local = content.scan(directory, known=known).manifest
    wanted = content.diff(origin, local)
    result.listed, result.extra = len(origin.entries), len(wanted.extra)
    result.missing, result.stale = len(wanted.missing), len(wanted.stale)
    status.update(result.fields(), force=True)
    for entry in wanted.wanted:
        url = urllib.parse.urljoin(manifest_url, urllib.parse.quote(entry.name))
        try:
            done = fetch(
                url,
                directory,
                entry.name,
                rate=rate,
                expect_size=entry.size,
                expect_sha256=entry.sha256,
                timeout=timeout,
                retries=retries,
                retry_wait=retry_wait,
                status=status.nested("current", "fetch"),
            )
        except (JobError, OSError) as exc:  # OSError: our disk (full, read-only)
            result.failed[entry.name] = str(exc)
            _log("sync", f"{entry.name}: {exc}")
        else:
            result.fetched.append(entry.name)
            result.bytes += done.size
            st = os.stat(done.path, follow_symlinks=False)
            known[entry.name] = (st.st_size, st.st_mtime_ns, st.st_ino, done.sha256)
        status.update({**result.fields(), "current": None}, force=True)
    return result


# -- the command line ---------


def _arg(rule: Callable[[Any], Any], convert: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    # argparse shows a ValueError as "invalid value"; our messages say more.
    def parse(text: str) -> Any:
        try:
            return rule(convert(text) if convert else text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = rule.__name__
    return parse


def _digits(text: str) -> int | str:
    # "300" -> 300 for the strict integer rules; anything else reaches the rule as text.
    return int(text) if re.fullmatch(r"[0-9]{1,12}", text, re.ASCII) else text


def _retries(value: Any) -> int:
    if not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"{value!r:.40} is not a number of retries: use 0-100")
    return value


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0.01 <= seconds <= 3600:  # NaN fails this too
        raise ValueError(f"{text!r:.40} is not a timeout: use seconds, 0.01-3600, e.g. 30")
    return seconds


def _path(text: str) -> pathlib.Path:
    if not text or "\x00" in text:
        raise ValueError(f"{text!r:.40} is not a path")
    return pathlib.Path(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobs", description="The CDN's jobs (see the module's docstring).")
    commands = parser.add_subparsers(dest="command", required=True)

    def network(p: argparse.ArgumentParser) -> None:
        p.add_argument("--rate", type=_arg(values.rate), default=0, help="bytes/s, nginx syntax (200k, 5m)")
        p.add_argument("--timeout", type=_arg(_seconds), default=DEFAULT_TIMEOUT, help="seconds of silence")
        p.add_argument("--retries", type=_arg(_retries, _digits), default=0)
        p.add_argument("--retry-wait", type=_arg(_seconds), default=1.0, help="seconds, doubled per retry")
        p.add_argument("--status", type=_arg(_path), help="JSON progress and result")

    fetch_p = commands.add_parser("fetch", help="resumable, verified download")
    fetch_p.add_argument("--url", type=_arg(values.http_url), required=True)
    fetch_p.add_argument("--dest", type=_arg(_path), required=True)
    fetch_p.add_argument("--name", type=_arg(values.content_name), required=True)
    fetch_p.add_argument("--expect-bytes", type=_arg(values.byte_count))
    fetch_p.add_argument("--expect-sha256", type=_arg(values.sha256_hex))
    fetch_p.add_argument("--manifest", type=_arg(values.http_url), help="take size and digest from it")
    network(fetch_p)

    generate_p = commands.add_parser("generate", help="random content")
    generate_p.add_argument("--dest", type=_arg(_path), required=True)
    generate_p.add_argument("--name", type=_arg(values.content_name), required=True)
    generate_p.add_argument("--size", type=_arg(values.size), required=True, help="e.g. 50M")
    generate_p.add_argument("--status", type=_arg(_path))

    manifest_p = commands.add_parser("manifest", help="write a directory's manifest")
    manifest_p.add_argument("--dir", type=_arg(_path), required=True)
    manifest_p.add_argument("--out", type=_arg(_path), help=f"default: DIR/{values.MANIFEST_NAME}")

    sync_p = commands.add_parser("sync", help="follow an origin's manifest")
    sync_p.add_argument("--origin-manifest", type=_arg(values.http_url), required=True)
    sync_p.add_argument("--dest", type=_arg(_path), required=True)
    sync_p.add_argument("--interval", type=_arg(values.interval, _digits), default=0, help="seconds; 0: once")
    network(sync_p)
    return parser


def _run(args: argparse.Namespace, status: Status) -> int:
    if args.command == "fetch":
        fetch(
            args.url,
            args.dest,
            args.name,
            rate=args.rate,
            expect_size=args.expect_bytes,
            expect_sha256=args.expect_sha256,
            manifest_url=args.manifest,
            timeout=args.timeout,
            retries=args.retries,
            retry_wait=args.retry_wait,
            status=status,
        )
        return 0
    if args.command == "generate":
        generate(args.dest, args.name, args.size, status=status)
        return 0
    if args.command == "manifest":
        scanned = content.write_manifest(args.dir, args.out)
        for name, why in scanned.skipped:
            _log("manifest", f"{name!r:.80} left out: {why}")
        status.update({"files": len(scanned.manifest.entries), "bytes": scanned.manifest.total_bytes})
        out = args.out or args.dir / values.MANIFEST_NAME
        status.update({"skipped": len(scanned.skipped), "out": str(out)})
        return 0
    result = sync(
        args.origin_manifest,
        args.dest,
        interval=args.interval,
        rate=args.rate,
        timeout=args.timeout,
        retries=args.retries,
        retry_wait=args.retry_wait,
        status=status,
    )
    return 0 if result.ok else EXIT_FAILED


def _stop(signum: int, frame: object) -> None:
    raise Stopped(f"stopped by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    status = Status(getattr(args, "status", None), args.command)
    try:
        previous = signal.signal(signal.SIGTERM, _stop)
    except ValueError:  # not the main thread (tests): leave signals alone
        previous = None
    try:
        code = _run(args, status)
        state, error = ("done", None) if code == 0 else ("failed", status.data.get("error"))
    except Stopped as exc:
        code, state, error = EXIT_STOPPED, "stopped", str(exc)
    except JobError as exc:
        code, state, error = EXIT_FAILED, "failed", str(exc)
    except (OSError, ValueError) as exc:  # our disk, or a value the checks missed
        code, state, error = EXIT_FAILED, "failed", f"{type(exc).__name__}: {exc}"
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    status.update({"state": state, "error": error}, force=True)
    if error:
        _log(args.command, error)
    print(json.dumps(status.data, sort_keys=True), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
