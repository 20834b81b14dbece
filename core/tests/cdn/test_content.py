import hashlib
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2sm_core.cdn import content
from l2sm_core.cdn.content import (
    MAX_ENTRIES,
    MAX_MANIFEST_BYTES,
    Entry,
    Manifest,
    atomic_write,
    diff,
    parse_manifest,
    scan,
    sha256_file,
    write_manifest,
)
from l2sm_testing.bad_input import json_values, not_json

A = "a" * 64
B = "b" * 64


def _doc(files, **top) -> str:
    return json.dumps({"schema": 1, "files": files, **top})


def test_entries_are_checked():
    assert Entry("a.bin", 0, A).to_json() == {"name": "a.bin", "bytes": 0, "sha256": A}
    for fields, fragment in [
        (("../a", 1, A), "name: '../a' is a path"),
        (("a", -1, A), "bytes: -1 is not a byte count"),
        (("a", True, A), "bytes: must be an integer, got bool"),
        (("a", "1", A), "bytes: must be an integer, got str"),
        (("a", 1, A.upper()), "sha256: .* uppercase"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            Entry(*fields)


def test_manifests_sort_and_refuse_duplicates():
    manifest = Manifest((Entry("b", 2, B), Entry("a", 1, A)))
    assert [e.name for e in manifest.entries] == ["a", "b"]
    assert manifest.get("b") == Entry("b", 2, B) and manifest.get("c") is None
    assert manifest.total_bytes == 3
    with pytest.raises(ValueError, match="'a' is listed twice"):
        Manifest((Entry("a", 1, A), Entry("a", 2, B)))


def test_encoding_is_one_entry_a_line_and_reads_back():
    manifest = Manifest((Entry("b", 2, B), Entry("a", 1, A)))
    text = manifest.encode().decode()
    assert text.splitlines() == [
        '{"schema": 1, "files": [',
        f'{{"name": "a", "bytes": 1, "sha256": "{A}"}},',
        f'{{"name": "b", "bytes": 2, "sha256": "{B}"}}',
        "]}",
    ]
    assert parse_manifest(text) == manifest
    assert parse_manifest(Manifest().encode()) == Manifest()


def test_the_largest_manifest_we_write_is_one_we_read():
    entries = tuple(Entry(f"{i:05d}" + "x" * 123, 2**53 - 1, A) for i in range(MAX_ENTRIES))
    data = Manifest(entries).encode()
    assert len(data) <= MAX_MANIFEST_BYTES
    assert len(parse_manifest(data).entries) == MAX_ENTRIES
    with pytest.raises(ValueError, match="at most 10000"):
        Manifest((*entries, Entry("z", 1, A)))


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(b" " * (MAX_MANIFEST_BYTES + 1), "too large", id="large"),
        (b"\xff", "not UTF-8"),
        (b"{", "not JSON"),
        pytest.param("[" * 100_000, "nested too deeply|not JSON", id="deep"),
        ('{"schema": NaN, "files": []}', "NaN is not JSON"),
        ('{"schema": 1, "schema": 1, "files": []}', "'schema' appears twice"),
        ("[]", "must be a JSON object"),
        (_doc([], extra=1), "unknown keys \\['extra'\\]"),
        ('{"files": []}', "lacks schema"),
        ('{"schema": "1", "files": []}', "schema must be an integer"),
        ('{"schema": true, "files": []}', "schema must be an integer"),
        ('{"schema": 2, "files": []}', "schema 2 is not one this reader knows"),
        ('{"schema": 1, "files": {}}', "files must be a list"),
        pytest.param(_doc([{}] * (MAX_ENTRIES + 1)), "at most 10000", id="many"),
        (_doc(["a"]), "files\\[0\\] must be a JSON object"),
        (_doc([{"name": "a", "bytes": 1, "sha256": A, "url": "http://x"}]), "files\\[0\\] has unknown keys"),
        (_doc([{"name": "a", "bytes": 1}]), "files\\[0\\] lacks sha256"),
        (_doc([{"name": "../a", "bytes": 1, "sha256": A}]), "files\\[0\\].name: '../a' is a path"),
        (_doc([{"name": "a.partial", "bytes": 1, "sha256": A}]), "files\\[0\\].name: .*in progress"),
        (_doc([{"name": "a", "bytes": "1", "sha256": A}]), "files\\[0\\].bytes: must be an integer"),
        (_doc([{"name": "a", "bytes": 1.0, "sha256": A}]), "files\\[0\\].bytes: must be an integer"),
        (_doc([{"name": "a", "bytes": -1, "sha256": A}]), "files\\[0\\].bytes: -1 is not a byte count"),
        (_doc([{"name": "a", "bytes": 1, "sha256": A.upper()}]), "files\\[0\\].sha256: .*lowercase"),
        (_doc([{"name": "a", "bytes": 1, "sha256": A}] * 2), "'a' is listed twice"),
        (5, "not a document"),
    ],
)
def test_manifests_from_the_network_are_read_strictly(data, fragment):
    with pytest.raises(ValueError, match=f"^manifest: .*{fragment}"):
        parse_manifest(data)


def _entries():
    first = st.sampled_from("abcXYZ019_")
    rest = st.text(alphabet="abcXYZ019_-.", max_size=20).filter(
        lambda t: ".." not in t and not t.endswith(".partial")
    )
    names = st.builds(str.__add__, first, rest).filter(lambda n: n != "manifest.json")
    digests = st.binary(min_size=32, max_size=32).map(bytes.hex)
    entry = st.builds(Entry, names, st.integers(0, 2**53 - 1), digests)
    return st.lists(entry, max_size=20, unique_by=lambda e: e.name)


@given(_entries())
def test_manifests_round_trip(entries):
    manifest = Manifest(tuple(entries))
    assert parse_manifest(manifest.encode()) == manifest


@given(
    st.one_of(
        st.binary(max_size=200),
        not_json(),
        json_values().map(json.dumps),
        st.dictionaries(st.sampled_from(["schema", "files", "x"]), json_values()).map(json.dumps),
        st.lists(
            st.dictionaries(st.sampled_from(["name", "bytes", "sha256", "y"]), json_values()), max_size=3
        ).map(lambda files: _doc(files)),
    )
)
def test_anything_parses_or_is_a_value_error(data):
    try:
        parse_manifest(data)
    except ValueError as exc:
        assert str(exc).startswith("manifest: ") and len(str(exc)) < 400


def test_diff():
    origin = Manifest((Entry("a", 1, A), Entry("b", 2, B), Entry("c", 3, A)))
    local = Manifest((Entry("b", 2, A), Entry("c", 3, A), Entry("d", 4, B)))
    result = diff(origin, local)
    assert result.missing == (Entry("a", 1, A),)
    assert result.stale == (Entry("b", 2, B),)  # the origin's entry: what to fetch
    assert result.extra == (Entry("d", 4, B),)
    assert [e.name for e in result.wanted] == ["a", "b"]
    assert diff(origin, origin).wanted == ()


def test_sha256_file_reads_in_chunks(tmp_path):
    data = os.urandom(300_000)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f", chunk=4096) == (len(data), hashlib.sha256(data).hexdigest())


def test_scan_lists_complete_content_only(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"a")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "b.bin.partial").write_bytes(b"half")  # in progress
    (tmp_path / ".a.bin.tmp").write_bytes(b"t")  # ours, hidden
    (tmp_path / "manifest.json").write_bytes(b"{}")
    (tmp_path / "other.json").write_bytes(b"{}")
    (tmp_path / "my video.mp4").write_bytes(b"v")
    (tmp_path / "link").symlink_to("/etc/passwd")
    (tmp_path / "sub").mkdir()
    result = scan(tmp_path, exclude=("other.json",))
    assert [(e.name, e.size) for e in result.manifest.entries] == [("a.bin", 1), ("empty", 0)]
    assert result.manifest.get("a.bin") == Entry("a.bin", 1, hashlib.sha256(b"a").hexdigest())
    skipped = dict(result.skipped)
    assert set(skipped) == {"link", "my video.mp4", "sub"}
    assert skipped["link"] == "a symbolic link" and "not a content name" in skipped["my video.mp4"]


def test_scan_hashes_only_what_changed(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(name.encode())
    hashed = []
    real = content.sha256_file
    monkeypatch.setattr(content, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    known: content.HashCache = {}
    first = scan(tmp_path, known=known).manifest
    assert sorted(hashed) == ["a", "b", "c"] and set(known) == {"a", "b", "c"}
    hashed.clear()
    (tmp_path / "b").unlink()
    atomic_write(tmp_path / "c", b"new")  # replaced: a new inode
    second = scan(tmp_path, known=known).manifest
    assert hashed == ["c"] and set(known) == {"a", "c"}
    assert second.get("a") == first.get("a") and second.get("c") == Entry(
        "c", 3, hashlib.sha256(b"new").hexdigest()
    )


def test_scan_skips_a_file_removed_while_it_looks(tmp_path, monkeypatch):
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")

    def gone(path):
        if path.name == "a":
            raise FileNotFoundError(path)
        return (1, hashlib.sha256(b"b").hexdigest())

    monkeypatch.setattr(content, "sha256_file", gone)
    assert [e.name for e in scan(tmp_path).manifest.entries] == ["b"]


def test_write_manifest_and_atomic_write(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"a")
    write_manifest(tmp_path)
    assert (tmp_path / "manifest.json").stat().st_mode & 0o777 == 0o644
    assert [e.name for e in parse_manifest((tmp_path / "manifest.json").read_bytes()).entries] == ["a.bin"]
    # Written elsewhere under another name, in the directory itself: it does not list itself.
    write_manifest(tmp_path, tmp_path / "index.json")
    assert [e.name for e in parse_manifest((tmp_path / "index.json").read_bytes()).entries] == ["a.bin"]
    (tmp_path / "out").mkdir()
    write_manifest(tmp_path, tmp_path / "out" / "m.json")
    assert parse_manifest((tmp_path / "out" / "m.json").read_bytes()).get("a.bin") is not None
    # A failed replace leaves no temporary file behind.
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        atomic_write(tmp_path / "dir", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.bin",
        "dir",
        "index.json",
        "manifest.json",
        "out",
    ]
