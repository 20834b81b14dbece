"""The CDN actions' decisions and results, shared by the charms and the lab (l2sm_core.cdn.results)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2sm_core.cdn import results


def test_result_text_writes_what_the_juju_cli_writes():
    assert [results.result_text(v) for v in (None, True, False, 0, "x")] == ["", "true", "false", "0", "x"]


def test_fetch_source_by_name_or_url():
    assert results.fetch_source("http://10.0.2.10:80/", "a b.bin", None) == (
        "a b.bin",
        "http://10.0.2.10:80/a%20b.bin",
    )
    # The URL's last segment, percent-decoded, is the name it is cached under.
    assert results.fetch_source("http://o/", None, "http://x/d/video%2D1.mp4") == (
        "video-1.mp4",
        "http://x/d/video%2D1.mp4",
    )
    with pytest.raises(ValueError, match=r"parameter 'url'.*not a content name"):
        results.fetch_source("http://o/", None, "http://x/d/v%C3%ADdeo.mp4")
    with pytest.raises(ValueError, match="parameter 'url'"):
        results.fetch_source("http://o/", None, "http://x/dir/")


def test_fetch_conflicts():
    assert results.fetch_conflict("a", {}) is None
    assert "a fetch of b is running" in (results.fetch_conflict("a", {"fetch": {"name": "b"}}) or "")
    assert "a fetch of a file" in (results.fetch_conflict("a", {"fetch": None}) or "")
    syncing = {"sync": {"current": {"name": "a"}}}
    assert "sync job" in (results.fetch_conflict("a", syncing) or "")
    assert results.fetch_conflict("other", syncing) is None


def test_fetch_results_and_failures():
    done = results.fetch_results("a", "u", {"state": "done", "bytes": 5, "verified": True, "resumed-from": 2})
    assert done == {
        "name": "a",
        "url": "u",
        "state": "done",
        "bytes": "5",
        "verified": "true",
        "resumed": "true",
        "resumed-from": "2",
    }
    with pytest.raises(ValueError, match="5 bytes kept: run it again to resume"):
        results.fetch_results("a", "u", {"state": "failed", "bytes": 5, "error": "cut"})
    with pytest.raises(ValueError, match="sync-now stopped"):
        results.sync_now_results("m", {"state": "stopped"})
    assert results.sync_now_results("m", {"state": "done", "fetched": 2})["fetched"] == "2"


def test_cache_files_listing_and_purge():
    complete, partial = results.cache_files(
        [("a", 3), ("b.partial", 1), (".hidden", 9), ("manifest.json", 7), ("c", 4)]
    )
    assert complete == {"a": 3, "c": 4} and partial == {"b": 1}
    listing = results.cache_listing(complete, partial)
    assert listing["complete"] == "a 3\nc 4" and listing["complete-bytes"] == "7"
    assert results.purge_names(None, complete, partial) == ["a", "b", "c"]
    assert results.purge_names("b", complete, partial) == ["b"]
    with pytest.raises(ValueError, match="not in the cache"):
        results.purge_names("z", complete, partial)
    assert results.purge_conflict({"sync": {"state": "idle"}}) is None
    assert "fetch job" in (results.purge_conflict({"fetch": {"state": "running"}}) or "")
    assert results.purge_results(["a", "b"], 4) == {
        "removed": "a b",
        "removed-count": "2",
        "bytes-freed": "4",
    }


def test_content_server_decisions():
    assert "already in the content" in (results.new_content_conflict("generate", "a", {"a"}, {}) or "")
    assert "is running" in (results.new_content_conflict("generate", "b", set(), {"generate": "x"}) or "")
    assert "being written" in (results.new_content_conflict("fetch", "b", set(), {"generate": "b"}) or "")
    assert results.new_content_conflict("fetch", "b", set(), {}) is None
    assert "not in the content" in (results.remove_content_refusal("a", set(), False, {}) or "")
    assert results.remove_content_refusal("a", set(), True, {}) is None  # a partial alone goes too
    assert "being written" in (results.remove_content_refusal("a", {"a"}, False, {"fetch": "a"}) or "")
    assert results.remove_content_results("a", 3, 1) == {"removed": "a", "bytes-freed": "3", "count": "1"}
    assert results.manifest_word("a", "running", None).startswith("refreshed when")
    assert results.manifest_word("a", "done", {"a"}) == "refreshed"
    assert results.manifest_word("a", "done", set()) == "a not listed"
    with pytest.raises(ValueError, match="generate of a failed"):
        results.content_job_results("generate", "a", {"state": "failed", "error": "disk"})
    listing = results.server_listing([("a", 1, "d1"), ("b", 2, "d2")])
    assert listing == {"count": "2", "bytes": "3", "files": "a 1 d1\nb 2 d2"}


@given(st.text(max_size=30))
def test_listed_names_are_content_names_only(name):
    if results.listed(name):
        assert not name.startswith(".") and not name.endswith(".partial") and name != "manifest.json"
