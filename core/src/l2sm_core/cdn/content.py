"""The content manifest: which files a content directory holds, their sizes and SHA-256.

The origin publishes `manifest.json` next to its files; a cache reads it (untrusted: it
comes over the network), compares it with its own directory and fetches what is missing
or stale. Stdlib only: jobs.py runs this in the workload container.

The document, one entry per line so it diffs and reads well:

    {"schema": 1, "files": [
    {"name": "a.bin", "bytes": 1048576, "sha256": "..."}
    ]}

Entries are sorted by name; names follow values.content_name. Only complete regular files
count: `*.partial` (a download in progress), hidden files (our temporary files), symbolic
links (they could point outside the directory) and the manifest itself are left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import pathlib
import tempfile
from collections.abc import Iterable, MutableMapping
from typing import Any

from l2sm_core.cdn.values import (
    MANIFEST_NAME,
    PARTIAL_SUFFIX,
    byte_count,
    content_name,
    sha256_hex,
)

SCHEMA = 1
# Bounds on what a reader accepts from the network; a full manifest of the longest names
# stays well below the byte bound (tests check it).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_ENTRIES = 10_000
CHUNK = 1024 * 1024

# What scan() remembers between calls: name -> (size, mtime_ns, inode, sha256). A file
# replaced (os.replace makes a new inode) or touched is hashed again.
HashCache = MutableMapping[str, tuple[int, int, int, str]]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One complete file: its name, size in bytes and SHA-256 (lowercase hex)."""

    name: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        for key, value in (("name", self.name), ("bytes", self.size), ("sha256", self.sha256)):
            try:
                _check_field(key, value)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "bytes": self.size, "sha256": self.sha256}


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The entries of a content directory, sorted by name, each name once."""

    entries: tuple[Entry, ...] = ()

    def __post_init__(self) -> None:
        entries = tuple(sorted(self.entries, key=lambda e: e.name))
        if len(entries) > MAX_ENTRIES:
            raise ValueError(f"{len(entries)} files: a manifest lists at most {MAX_ENTRIES}")
        for before, after in itertools.pairwise(entries):
            if before.name == after.name:
                raise ValueError(f"{before.name!r} is listed twice")
        object.__setattr__(self, "entries", entries)

    def get(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.name == name), None)

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)

    def encode(self) -> bytes:
        lines = ",\n".join(json.dumps(e.to_json()) for e in self.entries)
        body = f"\n{lines}\n" if lines else ""
        return f'{{"schema": {SCHEMA}, "files": [{body}]}}\n'.encode()


@dataclasses.dataclass(frozen=True)
class Diff:
    """What a cache lacks compared with its origin."""

    missing: tuple[Entry, ...]  # listed by the origin, absent here
    stale: tuple[Entry, ...]  # present here with another size or digest (origin's entry)
    extra: tuple[Entry, ...]  # here, not at the origin (left alone: reported only)

    @property
    def wanted(self) -> tuple[Entry, ...]:
        """The origin's entries to fetch, by name."""
        return tuple(sorted(self.missing + self.stale, key=lambda e: e.name))


def diff(origin: Manifest, local: Manifest) -> Diff:
    have = {e.name: e for e in local.entries}
    want = {e.name: e for e in origin.entries}
    missing = tuple(e for e in origin.entries if e.name not in have)
    stale = tuple(e for e in origin.entries if e.name in have and have[e.name] != e)
    extra = tuple(e for e in local.entries if e.name not in want)
    return Diff(missing, stale, extra)


# -- reading a manifest from the network ---------


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of duplicate keys: a document saying two things is refused.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _exact_keys(obj: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be a JSON object with {', '.join(keys)}")
    unknown = sorted(set(obj) - set(keys))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown!r:.80}: only {', '.join(keys)}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")
    return obj


def parse_manifest(data: bytes | str) -> Manifest:
    """A manifest read from the network, checked strictly: bounded in bytes and entries,
    UTF-8 JSON without duplicate keys, schema 1, every entry valid, each name once.
    Raises ValueError saying what is wrong ("manifest: files[3].name: ...")."""
    raw = data.encode() if isinstance(data, str) else data
    if not isinstance(raw, bytes):
        raise ValueError("manifest: not a document")
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ValueError(f"manifest: {len(raw)} bytes is too large (at most {MAX_MANIFEST_BYTES})")
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_pairs, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ValueError("manifest: not UTF-8") from None
    except RecursionError:
        raise ValueError("manifest: nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"manifest: not JSON: {exc!s:.120}") from None
    try:
        doc = _exact_keys(doc, ("schema", "files"), "the document")
        schema = doc["schema"]
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise ValueError("schema must be an integer")
        if schema != SCHEMA:
            raise ValueError(f"schema {str(schema)[:20]} is not one this reader knows ({SCHEMA})")
        files = doc["files"]
        if not isinstance(files, list):
            raise ValueError("files must be a list")
        if len(files) > MAX_ENTRIES:
            raise ValueError(f"{len(files)} files: a manifest lists at most {MAX_ENTRIES}")
    except ValueError as exc:
        raise ValueError(f"manifest: {exc}") from None
    entries = []
    for index, item in enumerate(files):
        where = f"files[{index}]"
        try:
            obj = _exact_keys(item, ("name", "bytes", "sha256"), where)
        except ValueError as exc:
            raise ValueError(f"manifest: {exc}") from None
        try:
            entries.append(Entry(obj["name"], obj["bytes"], obj["sha256"]))
        except ValueError as exc:
            raise ValueError(f"manifest: {where}.{exc}") from None
    try:
        return Manifest(tuple(entries))
    except ValueError as exc:
        raise ValueError(f"manifest: {exc}") from None


def _check_field(key: str, value: Any) -> None:
    if key == "name":
        content_name(value)
    elif key == "bytes":
        # JSON numbers are typed: "12", 12.0 or true is not a byte count here.
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"must be an integer, got {type(value).__name__}")
        byte_count(value)
    else:
        sha256_hex(value)


# -- building a manifest from a directory ---------


def sha256_file(path: str | os.PathLike[str], chunk: int = CHUNK) -> tuple[int, str]:
    """(size, SHA-256) of a file, read in chunks: content files can be gigabytes."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Scan:
    manifest: Manifest
    # Files that look like content but are not listed, with why (a bad name, a symlink).
    skipped: tuple[tuple[str, str], ...] = ()


def _ignored(name: str, exclude: Iterable[str]) -> bool:
    # Not content and not worth a mention: our own temporary, partial and manifest files.
    return name.startswith(".") or name.endswith(PARTIAL_SUFFIX) or name == MANIFEST_NAME or name in exclude


def scan(
    directory: str | os.PathLike[str], *, exclude: Iterable[str] = (), known: HashCache | None = None
) -> Scan:
    """The manifest of `directory`'s complete files (not recursive: names have no '/').
    `known` carries digests between scans, so a cache re-hashes only what changed."""
    exclude = frozenset(exclude)
    entries: list[Entry] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    with os.scandir(directory) as it:
        items = sorted(it, key=lambda d: d.name)
    for item in items:
        name = item.name
        if _ignored(name, exclude):
            continue
        if item.is_symlink():
            skipped.append((name, "a symbolic link"))
            continue
        if not item.is_file(follow_symlinks=False):
            skipped.append((name, "not a regular file"))
            continue
        try:
            content_name(name)
        except ValueError as exc:
            skipped.append((name, str(exc)))
            continue
        try:
            entry = _entry(pathlib.Path(item.path), name, known)
        except FileNotFoundError:
            continue  # removed while we looked
        seen.add(name)
        entries.append(entry)
    if known is not None:
        for name in set(known) - seen:
            del known[name]
    return Scan(Manifest(tuple(entries)), tuple(skipped))


def _entry(path: pathlib.Path, name: str, known: HashCache | None) -> Entry:
    st = os.stat(path, follow_symlinks=False)
    key = (st.st_size, st.st_mtime_ns, st.st_ino)
    if known is not None and name in known and known[name][:3] == key:
        return Entry(name, st.st_size, known[name][3])
    size, digest = sha256_file(path)
    if known is not None:
        known[name] = (size, st.st_mtime_ns, st.st_ino, digest)
    return Entry(name, size, digest)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so a reader sees the old file or the new one, never half.
    The temporary file is hidden (a leading '.') so scan() never lists it."""
    target = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600: nginx, another user, must read manifests
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_manifest(directory: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Scan:
    """Scan `directory` and write its manifest to `out` (default: DIRECTORY/manifest.json)."""
    target = pathlib.Path(out) if out is not None else pathlib.Path(directory) / MANIFEST_NAME
    inside = target.parent.resolve() == pathlib.Path(directory).resolve()
    result = scan(directory, exclude=(target.name,) if inside else ())
    atomic_write(target, result.manifest.encode())
    return result


__all__ = [
    "CHUNK",
    "MANIFEST_NAME",
    "MAX_ENTRIES",
    "MAX_MANIFEST_BYTES",
    "SCHEMA",
    "Diff",
    "Entry",
    "HashCache",
    "Manifest",
    "Scan",
    "atomic_write",
    "diff",
    "parse_manifest",
    "scan",
    "sha256_file",
    "write_manifest",
]
