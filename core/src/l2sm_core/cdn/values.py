"""The CDN charms' parameter and option values: sizes, rates, content names, URLs, ports,
intervals and digests.

Each rule is a function that returns the parsed value or raises ValueError saying what is
wrong and what a right value looks like; the caller prefixes `parameter 'x':` or
`option 'x':` (validation.describe_validation_error does it for pydantic models).

This module is stdlib-only at import time: jobs.py imports it inside the workload
container, where there is no pydantic. The pydantic field types (`Size`, `Rate`,
`ContentName`, ...) are built on first use (module `__getattr__`), so charms get them with
a plain `from l2sm_core.cdn.values import Size`.

Decisions:
- Sizes are bytes, or a whole number with K, M or G (1024-based, either case), from 1 byte
  to 64G. No trailing B ("50MB" reads as decimal megabytes to many: say 50M) and no
  fractions ("1.5M": say 1536K); the refusal suggests the right spelling.
- Rates use nginx's syntax (`limit_rate`): bytes per second with k or m (1024-based), 0 for
  no limit, at most 10240m. nginx takes no g there, so neither do we.
- Content names are plain file names: ASCII letters, digits, '.', '_' and '-', at most 128
  characters, starting with a letter, digit or '_' (no hidden files, and nothing a command
  line would take for an option), no '..', and neither the `.partial` suffix (downloads in
  progress) nor the manifest's own name.
"""

from __future__ import annotations

import fractions
import re
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeGuard

KIB = 1024
MAX_SIZE = 64 * KIB**3
MAX_RATE = 10 * KIB**3
MAX_INTERVAL = 24 * 60 * 60
# An action waits at most this long for its job: longer work is followed with a second call,
# never minutes inside one action.
MAX_WAIT = 300
MAX_NAME = 128
MAX_URL = 2048
# The largest integer every JSON reader keeps exact: a manifest's byte counts stay below it.
MAX_BYTE_COUNT = 2**53 - 1
PARTIAL_SUFFIX = ".partial"
MANIFEST_NAME = "manifest.json"

_SIZE_UNITS = {"": 1, "k": KIB, "m": KIB**2, "g": KIB**3}
# re.ASCII and [0-9]: \d and int() would take any Unicode digit.
_SIZE = re.compile(r"([0-9]{1,20})([kmg]?)", re.ASCII | re.IGNORECASE)
_RATE = re.compile(r"([0-9]{1,20})([km]?)", re.ASCII | re.IGNORECASE)
_FRACTION = re.compile(r"([0-9]{0,20}\.[0-9]{1,20})([kmg]?)", re.ASCII | re.IGNORECASE)
_WITH_B = re.compile(r"([0-9]{1,20})([kmg]?)(i?b)", re.ASCII | re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_DIGITS = re.compile(r"[0-9]{1,20}", re.ASCII)

_SHOWN_MAX = 48


def _shown(value: Any) -> str:
    # validation.shown's rule, kept here because validation.py imports pydantic at load time.
    text = repr(value)
    if len(text) <= _SHOWN_MAX:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[: _SHOWN_MAX - 3]}...{size}"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def render_size(value: int) -> str:
    """A byte count in the largest unit that divides it exactly: 52428800 -> '50M'."""
    for unit in ("G", "M", "K"):
        scale = _SIZE_UNITS[unit.lower()]
        if value and value % scale == 0:
            return f"{value // scale}{unit}"
    return str(value)


def _size_hint(text: str) -> str:
    match = _FRACTION.fullmatch(text)
    if match:
        exact = fractions.Fraction(match[1]) * _SIZE_UNITS[match[2].lower()]
        if exact.denominator == 1 and 0 < exact <= MAX_SIZE:
            return f"use a whole number: {render_size(int(exact))}"
        return "use a whole number of bytes, K, M or G"
    match = _WITH_B.fullmatch(text)
    if match:
        return f"drop the {match[3]}: {match[1]}{match[2].upper()} (K, M and G are 1024-based)"
    if text.startswith("-"):
        return "a size cannot be negative"
    return "write bytes or a whole number with K, M or G, e.g. 512K, 50M, 1G"


def size(value: Any) -> int:
    """A size in bytes: 1024, 512k, 50M, 1G (K/M/G = 1024^n, either case), 1 byte to 64G."""
    if _is_int(value):
        count = value
    elif isinstance(value, str):
        text = value.strip()
        match = _SIZE.fullmatch(text)
        if not match:
            raise ValueError(f"{_shown(value)} is not a size: {_size_hint(text)}")
        count = int(match[1]) * _SIZE_UNITS[match[2].lower()]
    else:
        raise ValueError(f"{_shown(value)} is not a size: write e.g. 512K, 50M or 1G")
    if count < 1:
        raise ValueError(f"{_shown(value)} is too small: a size is at least 1 byte")
    if count > MAX_SIZE:
        raise ValueError(f"{_shown(value)} is too large: at most 64G")
    return count


def render_rate(value: int) -> str:
    """A rate in nginx's syntax, exactly: 204800 -> '200k', 0 -> '0' (no limit)."""
    for unit, scale in (("m", KIB**2), ("k", KIB)):
        if value and value % scale == 0:
            return f"{value // scale}{unit}"
    return str(value)


def rate(value: Any) -> int:
    """Bytes per second in nginx's syntax (k and m are 1024-based): 200k, 5m, 0 for no limit."""
    example = "write bytes per second with k or m, e.g. 200k or 5m (0 for no limit)"
    if _is_int(value):
        count = value
    elif isinstance(value, str):
        text = value.strip()
        match = _RATE.fullmatch(text)
        if not match:
            if re.fullmatch(r"[0-9]{1,20}[gG]", text, re.ASCII):
                hint = f"nginx rates take k or m, not g: write {int(text[:-1]) * KIB}m"
            elif re.search(r"bit|bps|/s", text, re.IGNORECASE):
                hint = "write bytes per second without a unit suffix, e.g. 200k (not 200kbit/s)"
            else:
                hint = example
            raise ValueError(f"{_shown(value)} is not a rate: {hint}")
        count = int(match[1]) * _SIZE_UNITS[match[2].lower()]
    else:
        raise ValueError(f"{_shown(value)} is not a rate: {example}")
    if count < 0:
        raise ValueError(f"{_shown(value)} is negative: {example}")
    if count > MAX_RATE:
        raise ValueError(f"{_shown(value)} is too fast to mean anything: at most 10240m")
    return count


def content_name(value: Any) -> str:
    """A content file's name: a plain file name, e.g. video-1080p.mp4."""
    example = "use letters, digits, '.', '_' and '-', e.g. video-1080p.mp4"
    if not isinstance(value, str) or not value:
        raise ValueError(f"{_shown(value)} is not a content name: {example}")
    if len(value) > MAX_NAME:
        raise ValueError(f"{_shown(value)} is too long: a content name is at most {MAX_NAME} characters")
    if "/" in value or "\\" in value:
        raise ValueError(f"{_shown(value)} is a path: give a file name without '/', e.g. video.mp4")
    if value.startswith("."):
        raise ValueError(f"{_shown(value)} starts with '.': hidden files are not content ({example})")
    if ".." in value:
        raise ValueError(f"{_shown(value)} contains '..': {example}")
    if not _NAME.fullmatch(value):
        raise ValueError(f"{_shown(value)} is not a content name: {example}, starting with a letter or digit")
    if value.endswith(PARTIAL_SUFFIX):
        raise ValueError(f"{_shown(value)} ends in {PARTIAL_SUFFIX}, which marks downloads in progress")
    if value == MANIFEST_NAME:
        raise ValueError(f"{MANIFEST_NAME!r} is the content manifest's own name: choose another")
    return value


def http_url(value: Any) -> str:
    """An http(s) URL with a host and no credentials, e.g. http://10.0.1.10:8080/video.mp4."""
    example = "e.g. http://10.0.1.10:8080/video.mp4"
    if not isinstance(value, str) or not value:
        raise ValueError(f"{_shown(value)} is not an http(s) URL: {example}")
    if len(value) > MAX_URL:
        raise ValueError(f"{_shown(value)} is too long: a URL is at most {MAX_URL} characters")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError(f"{_shown(value)} is not an http(s) URL: percent-encode spaces and non-ASCII")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port  # urllib checks the port only when asked
    except ValueError:
        raise ValueError(f"{_shown(value)} is not an http(s) URL (bad host or port): {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{_shown(value)} is not an http(s) URL with a host: {example}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{_shown(value)} carries credentials: give the URL without user:password@")
    if port == 0:
        raise ValueError(f"{_shown(value)} has port 0: use a port 1-65535")
    return value


def tcp_port(value: Any) -> int:
    """A TCP port: an integer 1-65535 (strict: "80", 80.0 and true are mistakes)."""
    if not _is_int(value) or not 1 <= value <= 65535:
        raise ValueError(f"{_shown(value)} is not a TCP port: use a whole number 1-65535, e.g. 8080")
    return value


def interval(value: Any) -> int:
    """Seconds between runs: an integer 0 (off) to 86400 (a day)."""
    if not _is_int(value) or not 0 <= value <= MAX_INTERVAL:
        raise ValueError(
            f"{_shown(value)} is not an interval: use whole seconds 0-{MAX_INTERVAL} "
            "(0 turns it off), e.g. 300"
        )
    return value


def wait_seconds(value: Any) -> int:
    """Seconds an action waits for its job: 0 (absent, or "") to MAX_WAIT; a JSON number, or
    its digits as OSM sends every primitive parameter."""
    if value is None or value == "":
        return 0
    seconds = int(value) if isinstance(value, str) and _DIGITS.fullmatch(value) else value
    if not _is_int(seconds) or not 0 <= seconds <= MAX_WAIT:
        raise ValueError(f"{_shown(value)} is not a number of seconds: use a whole number 0-{MAX_WAIT}")
    return seconds


def byte_count(value: Any) -> int:
    """A number of bytes, 0 allowed (an empty file): an integer or its decimal digits."""
    count = int(value) if isinstance(value, str) and _DIGITS.fullmatch(value) else value
    if not _is_int(count) or not 0 <= count <= MAX_BYTE_COUNT:
        raise ValueError(f"{_shown(value)} is not a byte count: use a whole number of bytes, e.g. 1048576")
    return count


def sha256_hex(value: Any) -> str:
    """A SHA-256 digest: 64 lowercase hexadecimal digits, as sha256sum prints it."""
    if isinstance(value, str) and _SHA256.fullmatch(value.lower()) and value != value.lower():
        raise ValueError(f"{_shown(value)} has uppercase digits: write the SHA-256 in lowercase")
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"{_shown(value)} is not a SHA-256: 64 lowercase hex digits, as sha256sum prints")
    return value


def absent_or(rule: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`rule`, except that None and an empty string mean absent (None): the house rule for
    optional action parameters and options."""

    def check(value: Any) -> Any:
        return None if value is None or value == "" else rule(value)

    check.__name__ = f"absent_or_{rule.__name__}"
    return check


# -- pydantic field types, built on first use ---------

_RULES: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "Size": (int, size),
    "Rate": (int, rate),
    "ContentName": (str, content_name),
    "HttpURL": (str, http_url),
    "TcpPort": (int, tcp_port),
    "Interval": (int, interval),
    "WaitSeconds": (int, wait_seconds),
    "ByteCount": (int, byte_count),
    "Sha256": (str, sha256_hex),
}
_OPTIONAL = ("Size", "Rate", "ContentName", "HttpURL", "ByteCount", "Sha256")

if TYPE_CHECKING:
    import pydantic

    Size = Annotated[int, pydantic.BeforeValidator(size)]
    Rate = Annotated[int, pydantic.BeforeValidator(rate)]
    ContentName = Annotated[str, pydantic.BeforeValidator(content_name)]
    HttpURL = Annotated[str, pydantic.BeforeValidator(http_url)]
    TcpPort = Annotated[int, pydantic.BeforeValidator(tcp_port)]
    Interval = Annotated[int, pydantic.BeforeValidator(interval)]
    WaitSeconds = Annotated[int, pydantic.BeforeValidator(wait_seconds)]
    ByteCount = Annotated[int, pydantic.BeforeValidator(byte_count)]
    Sha256 = Annotated[str, pydantic.BeforeValidator(sha256_hex)]
    OptionalSize = Annotated[int | None, pydantic.BeforeValidator(absent_or(size))]
    OptionalRate = Annotated[int | None, pydantic.BeforeValidator(absent_or(rate))]
    OptionalContentName = Annotated[str | None, pydantic.BeforeValidator(absent_or(content_name))]
    OptionalHttpURL = Annotated[str | None, pydantic.BeforeValidator(absent_or(http_url))]
    OptionalByteCount = Annotated[int | None, pydantic.BeforeValidator(absent_or(byte_count))]
    OptionalSha256 = Annotated[str | None, pydantic.BeforeValidator(absent_or(sha256_hex))]
else:

    def __getattr__(name: str) -> Any:
        base = name.removeprefix("Optional")
        if base not in _RULES or (base != name and base not in _OPTIONAL):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import pydantic  # only charms ask for these: the workload has no pydantic

        kind, rule = _RULES[base]
        # BeforeValidator: the rule sees the raw input, so pydantic never coerces "80" or 1.0 first.
        if base == name:
            built = Annotated[kind, pydantic.BeforeValidator(rule)]
        else:
            built = Annotated[kind | None, pydantic.BeforeValidator(absent_or(rule))]
        globals()[name] = built
        return built
