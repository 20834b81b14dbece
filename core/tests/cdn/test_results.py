"""The CDN job actions' decisions and results, shared by the charms and the lab."""

from __future__ import annotations

import pytest

from l2sm_core.cdn import results


def test_result_text_writes_values_as_the_juju_cli_does():
    assert [results.result_text(v) for v in (None, True, False, 3, "x")] == ["", "true", "false", "3", "x"]


def test_fetch_source_joins_a_name_to_the_origin_quoted_and_names_a_url_by_its_last_segment():
    assert results.fetch_source("http://10.0.2.10:80/", "a b.bin", None) == (
        "a b.bin",
        "http://10.0.2.10:80/a%20b.bin",
    )
    assert results.fetch_source("http://o/", None, "http://x/dir/v%2D1.mp4") == (
        "v-1.mp4",
        "http://x/dir/v%2D1.mp4",
    )


@pytest.mark.parametrize(
    "url", ["http://x/", "http://x/.hidden", "http://x/manifest.json", "http://x/a.partial"]
)
def test_fetch_source_refuses_a_url_without_a_content_name_naming_the_parameter(url):
    with pytest.raises(ValueError, match="parameter 'url': its file name"):
        results.fetch_source("http://o/", None, url)


def test_fetch_conflict_refuses_a_second_fetch_and_the_file_a_sync_holds():
    assert "a fetch of a.bin is running" in str(results.fetch_conflict("b.bin", {"fetch": {"name": "a.bin"}}))
    assert "a fetch of a file is running" in str(results.fetch_conflict("b.bin", {"fetch": None}))
    held = {"sync": {"current": {"name": "b.bin"}}}
    assert "by the sync job" in str(results.fetch_conflict("b.bin", held))
    assert results.fetch_conflict("c.bin", held) is None
    assert results.fetch_conflict("b.bin", {}) is None


def test_fetch_results_carry_the_charm_keys_and_a_failure_says_what_is_kept():
    status = {"state": "done", "bytes": 10, "total": 10, "sha256": "ab", "verified": True, "resumed-from": 4}
    got = results.fetch_results("a.bin", "http://o/a.bin", status)
    assert got == {
        "name": "a.bin",
        "url": "http://o/a.bin",
        "state": "done",
        "bytes": "10",
        "total": "10",
        "sha256": "ab",
        "verified": "true",
        "resumed": "true",
        "resumed-from": "4",
    }
    assert results.fetch_results("a.bin", "u", {})["state"] == "starting"
    with pytest.raises(ValueError, match=r"fetch of a.bin failed: cut \(7 bytes kept"):
        results.fetch_results("a.bin", "u", {"state": "failed", "error": "cut", "bytes": 7})


def test_sync_now_results_and_a_stopped_round():
    got = results.sync_now_results("http://o/manifest.json", {"state": "done", "fetched": 2, "error": None})
    assert got == {"manifest": "http://o/manifest.json", "state": "done", "fetched": "2", "error": ""}
    with pytest.raises(ValueError, match="sync-now stopped"):
        results.sync_now_results("m", {"state": "stopped", "error": "signal"})


def test_cache_files_listing_and_purge():
    complete, partial = results.cache_files(
        [("a.bin", 3), ("b.bin.partial", 2), (".tmp", 1), ("manifest.json", 9)]
    )
    assert (complete, partial) == ({"a.bin": 3}, {"b.bin": 2})
    assert results.cache_listing(complete, partial) == {
        "complete-count": "1",
        "complete-bytes": "3",
        "complete": "a.bin 3",
        "partial-count": "1",
        "partial": "b.bin 2",
    }
    assert results.purge_names(None, complete, partial) == ["a.bin", "b.bin"]
    assert results.purge_names("b.bin", complete, partial) == ["b.bin"]
    with pytest.raises(ValueError, match=r"parameter 'name': 'c\.bin' is not in the cache"):
        results.purge_names("c.bin", complete, partial)
    assert results.purge_conflict({"sync": {"state": "running"}}) is not None
    assert results.purge_conflict({"sync": {"state": "done"}, "fetch": None}) is None


def test_content_server_rules():
    assert results.listed("a.bin")
    assert not any(results.listed(n) for n in ("a.bin.partial", "manifest.json", ".x", "bad name"))
    assert "already in the content" in str(results.new_content_conflict("generate", "a", {"a"}, {}))
    busy = results.new_content_conflict("generate", "a", set(), {"generate": "b"})
    assert "a generate job writing b" in str(busy)
    assert "being written" in str(results.new_content_conflict("generate", "a", set(), {"fetch": "a"}))
    assert results.new_content_conflict("generate", "a", set(), {"fetch": "b"}) is None
    assert results.content_job_results("generate", "a", {"state": "done", "bytes": 1}) == {
        "name": "a",
        "state": "done",
        "bytes": "1",
    }
    with pytest.raises(ValueError, match="generate of a failed: disk"):
        results.content_job_results("generate", "a", {"state": "failed", "error": "disk"})
    assert results.manifest_word("a", "done", {"a"}) == "refreshed"
    assert results.manifest_word("a", "done", set()) == "a not listed"
    assert results.manifest_word("a", "running", None).startswith("refreshed when the job ends")
    assert results.server_listing([("a", 1, "d1"), ("b", 2, "d2")]) == {
        "count": "2",
        "bytes": "3",
        "files": "a 1 d1\nb 2 d2",
    }
