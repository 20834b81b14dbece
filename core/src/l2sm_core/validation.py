"""Input checks shared by every boundary (action params, config, relation data, lab CLI).

Each check raises ValueError with a message that says what is allowed, so the caller only
has to prefix the field name.
"""

from __future__ import annotations

import ipaddress
import re

import pydantic

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_IPV4_PREFIX = re.compile(r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")


def dns1123_label(value: str) -> str:
    """Return value if it is a DNS-1123 label (the rule for L2Network and Service names)."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty DNS-1123 label")
    if len(value) > 63:
        raise ValueError(f"must be at most 63 characters, got {len(value)}")
    if not _DNS1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def ipv4_prefix(value: str) -> ipaddress.IPv4Network:
    """Parse an IPv4 prefix strictly: host bits set, IPv6 or a bare address are refused."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"{value!r} is not an IPv4 prefix: write it as a.b.c.d/len, e.g. 10.0.1.0/24")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            base = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"{value!r} has host bits set: did you mean {base}?") from None
        raise ValueError(f"{value!r} is not an IPv4 prefix: write it as a.b.c.d/len") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError(f"{value!r} is IPv6: only IPv4 prefixes are supported")
    if not _IPV4_PREFIX.match(text):
        # ipaddress also takes netmasks and padded lengths (/255.255.255.0, /024): be strict.
        raise ValueError(f"{value!r} is not in a.b.c.d/len form: did you mean {network}?")
    if network.prefixlen > 30:
        raise ValueError(f"{value!r} leaves no room for hosts: use a prefix length of at most /30")
    return network


def describe_validation_error(exc: pydantic.ValidationError, kind: str = "parameter") -> str:
    """One line per invalid field, naming the field as the user typed it (dashes, not underscores)."""
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        msg = error["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if error["type"] == "extra_forbidden":
            msg = f"unknown {kind}"
        # A whole-model check has no location: its message names the fields itself.
        lines.append(f"{kind} '{loc.replace('_', '-')}': {msg}" if loc else msg)
    return "; ".join(lines)
