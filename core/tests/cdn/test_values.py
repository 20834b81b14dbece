import urllib.parse

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2sm_core.cdn import values
from l2sm_core.cdn.values import (
    MAX_RATE,
    MAX_SIZE,
    absent_or,
    byte_count,
    content_name,
    http_url,
    interval,
    rate,
    render_rate,
    render_size,
    sha256_hex,
    size,
    tcp_port,
)
from l2sm_core.validation import ActionParams, describe_validation_error
from l2sm_testing.bad_input import json_values, tricky_text

K, M, G = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1024", 1024),
        ("1", 1),
        ("512k", 512 * K),
        ("512K", 512 * K),
        ("50M", 50 * M),
        ("50m", 50 * M),
        ("1G", G),
        ("64G", 64 * G),
        (" 50M\n", 50 * M),  # the parsed number is kept, never the text
        (4096, 4096),
    ],
)
def test_sizes_accepted(text, expected):
    assert size(text) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1.5M", "use a whole number: 1536K"),
        ("0.5G", "use a whole number: 512M"),
        ("0.3M", "whole number of bytes, K, M or G"),
        ("50MB", "drop the B: 50M"),
        ("50MiB", "drop the iB: 50M"),
        ("1024b", "drop the b: 1024"),
        ("-5M", "cannot be negative"),
        ("0", "at least 1 byte"),
        (0, "at least 1 byte"),
        (-1, "at least 1 byte"),
        ("65G", "at most 64G"),
        (MAX_SIZE + 1, "at most 64G"),
        ("1T", "e.g. 512K, 50M, 1G"),
        ("", "not a size"),
        ("\u0663", "not a size"),  # an Arabic-Indic digit: int() would take it
        ("1" * 30, "not a size"),
        (True, "not a size"),
        (1.0, "not a size"),
        (None, "not a size"),
    ],
)
def test_sizes_refused_with_the_right_spelling(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        size(value)


def test_sizes_are_written_in_their_largest_exact_unit():
    assert render_size(50 * M) == "50M"
    assert render_size(1536 * K) == "1536K"
    assert render_size(G) == "1G"
    assert render_size(1000) == "1000"
    assert render_size(0) == "0"


@given(st.integers(min_value=1, max_value=MAX_SIZE))
def test_sizes_round_trip(count):
    assert size(render_size(count)) == count


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("200k", 200 * K), ("5m", 5 * M), ("5M", 5 * M), ("1000", 1000), (0, 0), ("10240m", MAX_RATE)],
)
def test_rates_accepted(text, expected):
    assert rate(text) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1g", "not g: write 1024m"),
        ("200kbit", "bytes per second without a unit suffix"),
        ("10mb/s", "without a unit suffix"),
        ("-1", "e.g. 200k or 5m"),
        (-1, "is negative"),
        ("10241m", "at most 10240m"),
        (1.5, "not a rate"),
        (True, "not a rate"),
        ("", "not a rate"),
    ],
)
def test_rates_refused(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        rate(value)


def test_rates_are_written_as_nginx_writes_them():
    assert render_rate(0) == "0"
    assert render_rate(200 * K) == "200k"
    assert render_rate(5 * M) == "5m"
    assert render_rate(G) == "1024m"  # nginx's limit_rate takes no g
    assert render_rate(1000) == "1000"


@given(st.integers(min_value=0, max_value=MAX_RATE))
def test_rates_round_trip(count):
    assert rate(render_rate(count)) == count


@pytest.mark.parametrize(
    "name", ["video-1080p.mp4", "a", "_x", "A1", "a.b.c", "x" * 128, "manifest.json.bak"]
)
def test_content_names_accepted(name):
    assert content_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "not a content name"),
        ("a/b", "a path"),
        ("../etc/passwd", "a path"),
        ("a\\b", "a path"),
        ("..", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("a..b", "contains '..'"),
        ("-rf", "starting with a letter or digit"),
        ("a b", "not a content name"),
        ("a\n", "not a content name"),
        ("vid\u00e9o.mp4", "not a content name"),
        ("x" * 129, "at most 128 characters"),
        ("video.mp4.partial", "downloads in progress"),
        ("manifest.json", "manifest's own name"),
        (5, "not a content name"),
        (None, "not a content name"),
    ],
)
def test_content_names_refused(name, fragment):
    with pytest.raises(ValueError, match=fragment):
        content_name(name)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.1.10:8080/video.mp4",
        "https://cdn.example.com",
        "http://[::1]:8080/x",
        "http://h/a?b=c#frag",
        "http://h:65535/",
    ],
)
def test_urls_accepted(url):
    assert http_url(url) == url


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://h/x", "not an http\\(s\\) URL with a host"),
        ("file:///etc/passwd", "with a host"),
        ("http://", "with a host"),
        ("http:///x", "with a host"),
        ("10.0.1.10/video.mp4", "with a host"),
        ("http://user:secret@h/", "carries credentials"),
        ("http://user@h/", "carries credentials"),
        ("http://h:0/", "port 0"),
        ("http://h:65536/", "bad host or port"),
        ("http://h:port/", "bad host or port"),
        ("http://[::1/", "bad host or port"),
        ("http://h/a b", "percent-encode"),
        ("http://h/\n", "percent-encode"),
        ("http://h\u00e9/", "percent-encode"),
        ("http://h/" + "x" * 2048, "at most 2048"),
        ("", "not an http"),
        (5, "not an http"),
    ],
)
def test_urls_refused(url, fragment):
    with pytest.raises(ValueError, match=fragment):
        http_url(url)


def test_ports_intervals_byte_counts_and_digests():
    assert tcp_port(1) == 1 and tcp_port(65535) == 65535
    for bad in [0, 65536, "80", 80.0, True, None]:
        with pytest.raises(ValueError, match="not a TCP port"):
            tcp_port(bad)
    assert interval(0) == 0 and interval(86400) == 86400
    for bad in [-1, 86401, "5", 1.5, True]:
        with pytest.raises(ValueError, match="0 turns it off"):
            interval(bad)
    assert byte_count(0) == 0 and byte_count("1048576") == 1048576 and byte_count(2**53 - 1) == 2**53 - 1
    for bad in [-1, "1k", "", 2**53, True, 1.0, " 1"]:
        with pytest.raises(ValueError, match="not a byte count"):
            byte_count(bad)
    digest = "0123456789abcdef" * 4
    assert sha256_hex(digest) == digest
    with pytest.raises(ValueError, match="lowercase"):
        sha256_hex(digest.upper())
    for bad in [digest[:-1], digest + "\n", "g" * 64, None]:
        with pytest.raises(ValueError, match="64 lowercase hex digits"):
            sha256_hex(bad)


def test_absent_values():
    optional = absent_or(size)
    assert optional("") is None and optional(None) is None and optional("1K") == 1024
    assert optional.__name__ == "absent_or_size"
    with pytest.raises(ValueError, match="not a size"):
        optional(" ")


class _FetchParams(ActionParams):
    """What a charm's fetch action could declare."""

    url: values.HttpURL
    name: values.OptionalContentName = None
    rate: values.Rate = 0
    size: values.OptionalSize = None
    port: values.TcpPort = 80
    every: values.Interval = 0
    sha256: values.OptionalSha256 = None
    expect_bytes: values.OptionalByteCount = None


def test_pydantic_types():
    given = {"url": "http://h/a", "name": "", "rate": "200k", "size": "50M", "sha256": ""}
    given["expect_bytes"] = "9"
    params = _FetchParams.model_validate(given)
    assert (params.name, params.rate, params.size, params.sha256, params.expect_bytes) == (
        None,
        204800,
        50 * M,
        None,
        9,
    )
    for fields, expected in [
        ({"url": "ftp://h/a"}, "parameter 'url': 'ftp://h/a' is not an http(s) URL"),
        ({"url": "http://h/a", "name": "a/b"}, "parameter 'name': 'a/b' is a path"),
        ({"url": "http://h/a", "port": "80"}, "parameter 'port': '80' is not a TCP port"),
        (
            {"url": "http://h/a", "size": "1.5M"},
            "parameter 'size': '1.5M' is not a size: use a whole number: 1536K",
        ),
        ({"url": "http://h/a", "expect_bytes": "x"}, "parameter 'expect-bytes': "),
        ({"url": "http://h/a", "extra": 1}, "parameter 'extra': unknown parameter"),
    ]:
        with pytest.raises(pydantic.ValidationError) as info:
            _FetchParams(**fields)
        assert describe_validation_error(info.value).startswith(expected)
    assert values.Size is values.Size  # built once, then kept


def test_unknown_types_are_attribute_errors():
    for name in ["Nothing", "OptionalTcpPort", "OptionalInterval"]:
        with pytest.raises(AttributeError):
            getattr(values, name)


_RULES = [size, rate, content_name, http_url, tcp_port, interval, byte_count, sha256_hex]
_GOOD = ["50M", "200k", "video.mp4", "http://10.0.1.10:8080/a.bin", "0" * 64, "8080", "300"]


@given(value=st.one_of(tricky_text(_GOOD), json_values(), st.integers(), st.floats()))
def test_rules_accept_or_raise_value_error_only(value):
    # A boundary turns a ValueError into "parameter 'x': why"; anything else is a traceback.
    for rule in _RULES:
        try:
            accepted = rule(value)
        except ValueError as exc:
            assert len(str(exc)) < 300
            continue
        if rule is size:
            assert size(render_size(accepted)) == accepted
        elif rule is rate:
            assert rate(render_rate(accepted)) == accepted
        elif rule is http_url:
            urllib.parse.urlsplit(accepted).port  # noqa: B018 - usable as given
        elif rule in (content_name, sha256_hex):
            assert accepted == value


@given(value=st.one_of(tricky_text(_GOOD), json_values()))
def test_pydantic_types_raise_validation_errors_only(value):
    for field in ["url", "name", "rate", "size", "port", "every", "sha256", "expect_bytes"]:
        fields = {"url": "http://h/a", field: value}
        try:
            _FetchParams(**fields)
        except pydantic.ValidationError as exc:
            assert len(describe_validation_error(exc)) < 400


@pytest.mark.parametrize(("value", "seconds"), [(None, 0), ("", 0), (0, 0), (300, 300), ("42", 42)])
def test_wait_seconds_takes_numbers_and_their_digits(value, seconds):
    assert values.wait_seconds(value) == seconds


@pytest.mark.parametrize("value", [-1, 301, "301", "1.5", 2.0, True, "x", "٣"])
def test_wait_seconds_refuses_the_rest(value):
    with pytest.raises(ValueError, match="number of seconds"):
        values.wait_seconds(value)
