"""What the CDN charms' job actions decide and answer: which file a fetch takes, which running
job stands in its way, and the results read from a job's status file (l2sm_core.cdn.jobs).

Pure: the charms call these with what Pebble shows, the lab with what its namespaces hold, so
both refuse and answer alike. A refusal is a ValueError whose message names the parameter and
the fix; callers turn it into their own failure (Refused, ActionFailed).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from l2sm_core.cdn import values
from l2sm_core.validation import clip

FETCH = "fetch"
SYNC = "sync"
SYNC_NOW = "sync-now"
GENERATE = "generate"
LISTED_MAX = 100  # files named in a list-content result; the counts cover all
FETCH_KEYS = ("bytes", "total", "sha256", "seconds", "verified", "already", "attempts")
SYNC_KEYS = ("listed", "missing", "stale", "extra", "fetched", "failed", "bytes", "seconds", "error")
CONTENT_JOB_KEYS = ("bytes", "total", "sha256", "seconds", "attempts")

Status = Mapping[str, Any]


def result_text(value: Any) -> str:
    """A value as a Juju action result (strings only): null and booleans as the CLI writes them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _copied(status: Status, keys: Iterable[str]) -> dict[str, str]:
    return {key: result_text(status[key]) for key in keys if key in status}


def url_content_name(url: str) -> str:
    """The content name a URL's last path segment gives (percent-decoded); ValueError saying
    why it is not one."""
    last = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rpartition("/")[2])
    return values.content_name(last)


def listed(name: str) -> bool:
    """Whether a regular file of this name is content a manifest lists (content.scan's rule)."""
    if name.startswith(".") or name == values.MANIFEST_NAME or name.endswith(values.PARTIAL_SUFFIX):
        return False
    try:
        values.content_name(name)
    except ValueError:
        return False
    return True


# -- the cache ------------------------------------------------------------------------------------


def fetch_source(base: str, name: str | None, url: str | None) -> tuple[str, str]:
    """(name, url) of a cache's fetch-content: a name is a file of the origin at `base`, a URL
    is cached under its last path segment."""
    if name is not None:
        return name, urllib.parse.urljoin(base, urllib.parse.quote(name))
    url = url or ""
    try:
        return url_content_name(url), url
    except ValueError as exc:
        raise ValueError(f"parameter 'url': its file name {exc}") from None


def fetch_conflict(name: str, running: Mapping[str, Status | None]) -> str | None:
    """Why a fetch of `name` must not start, given the cache's jobs running now (job -> its
    status, None when unreadable), or None."""
    if FETCH in running:
        current = (running[FETCH] or {}).get("name", "a file")
        return f"a fetch of {current} is running: wait for it (list-content shows it)"
    for job in (SYNC, SYNC_NOW):
        # A sync fetching this very file holds its lock: the fetch would only fail.
        current = (running.get(job) or {}).get("current") or {} if job in running else {}
        if isinstance(current, dict) and current.get("name") == name:
            return f"parameter 'name': {name!r} is being fetched by the {job} job: wait for it"
    return None


def fetch_results(name: str, url: str, status: Status) -> dict[str, str]:
    """fetch-content's results from the fetch job's status; ValueError when it failed or stopped."""
    state = status.get("state", "starting")
    if state in ("failed", "stopped"):
        kept = result_text(status.get("bytes", 0))
        raise ValueError(
            f"fetch of {name} {state}: {status.get('error')} ({kept} bytes kept: run it again to resume)"
        )
    resumed_from = int(status.get("resumed-from") or 0)
    results = {"name": name, "url": url, "state": str(state), **_copied(status, FETCH_KEYS)}
    results["resumed"] = result_text(resumed_from > 0)
    results["resumed-from"] = str(resumed_from)
    return results


def sync_now_results(manifest_url: str, status: Status) -> dict[str, str]:
    """sync-now's results from the round's status; ValueError when it was stopped (a failed
    file is a result: the round says which)."""
    state = status.get("state", "starting")
    if state == "stopped":
        raise ValueError(f"sync-now stopped: {status.get('error')}")
    return {"manifest": manifest_url, "state": str(state), **_copied(status, SYNC_KEYS)}


def cache_files(entries: Iterable[tuple[str, int]]) -> tuple[dict[str, int], dict[str, int]]:
    """(complete files, partial downloads), name -> bytes, of a cache's regular files."""
    complete, partial = {}, {}
    for name, size in entries:
        if name.startswith("."):
            continue
        if name.endswith(values.PARTIAL_SUFFIX):
            partial[name.removesuffix(values.PARTIAL_SUFFIX)] = size
        elif name != values.MANIFEST_NAME:
            complete[name] = size
    return complete, partial


def _lines(files: Mapping[str, int]) -> str:
    # Action result keys cannot hold file names (dots): one "name bytes" line per file.
    return "\n".join(f"{n} {s}" for n, s in sorted(files.items())[:LISTED_MAX])


def cache_listing(complete: Mapping[str, int], partial: Mapping[str, int]) -> dict[str, str]:
    """The cache's list-content results."""
    return {
        "complete-count": str(len(complete)),
        "complete-bytes": str(sum(complete.values())),
        "complete": _lines(complete),
        "partial-count": str(len(partial)),
        "partial": _lines(partial),
    }


def purge_names(name: str | None, complete: Collection[str], partial: Collection[str]) -> list[str]:
    """What purge removes: the named file (ValueError when the cache lacks it) or everything."""
    if name is None:
        return sorted(set(complete) | set(partial))
    if name not in complete and name not in partial:
        raise ValueError(f"parameter 'name': {name!r} is not in the cache (list-content shows what is)")
    return [name]


def purge_conflict(running: Mapping[str, Status | None]) -> str | None:
    """Why purge must wait, given the cache's jobs running now, or None."""
    for job in (FETCH, SYNC_NOW, SYNC):
        if job in running and (running[job] or {}).get("state") == "running":
            return f"the {job} job is writing to the cache: purge once it is done"
    return None


def purge_results(names: Collection[str], freed: int) -> dict[str, str]:
    return {"removed": " ".join(names), "removed-count": str(len(names)), "bytes-freed": str(freed)}


# -- the content server ------------------------------------------------------------------------


def remove_content_refusal(
    name: str, present: Collection[str], partial: bool, writing: Mapping[str, str]
) -> str | None:
    """Why remove-content must not remove `name` (absent, or a running job writes it), or None."""
    if name not in present and not partial:
        return f"parameter 'name': {name!r} is not in the content (list-content shows what is)"
    if name in writing.values():
        return f"parameter 'name': {name!r} is being written by a running job: wait for it"
    return None


def remove_content_results(name: str, freed: int, remaining: int) -> dict[str, str]:
    return {"removed": name, "bytes-freed": str(freed), "count": str(remaining)}


def new_content_conflict(
    job: str, name: str, present: Collection[str], writing: Mapping[str, str]
) -> str | None:
    """Why a content job writing `name` must not start (a job replaces its file, and caches
    verify the old one), given the files present and the jobs running (job -> name), or None."""
    if name in present:
        return f"parameter 'name': {name!r} is already in the content: remove-content it first"
    if job in writing:
        return f"a {job} job writing {writing[job] or 'a file'} is running: wait for it"
    if name in writing.values():
        return f"parameter 'name': {name!r} is being written by a running job: wait for it"
    return None


def content_job_results(job: str, name: str, status: Status) -> dict[str, str]:
    """generate-content's / add-content's results (without the manifest's word); ValueError
    when the job failed or stopped."""
    state = status.get("state", "starting")
    if state in ("failed", "stopped"):
        raise ValueError(clip(f"{job} of {name} {state}: {status.get('error')}", 400))
    return {"name": name, "state": str(state), **_copied(status, CONTENT_JOB_KEYS)}


def manifest_word(name: str, state: str, listed_names: Collection[str] | None) -> str:
    """The `manifest` result of a content job: the manifest was refreshed once it ended."""
    if state != "done" or listed_names is None:
        return "refreshed when the job ends (update-status, or list-content)"
    return "refreshed" if name in listed_names else f"{name} not listed"


def server_listing(entries: Iterable[tuple[str, int, str]]) -> dict[str, str]:
    """The content server's list-content results from its manifest's (name, size, sha256)."""
    entries = list(entries)
    return {
        "count": str(len(entries)),
        "bytes": str(sum(size for _, size, _ in entries)),
        "files": "\n".join(f"{n} {s} {d}" for n, s, d in entries[:LISTED_MAX]),
    }
