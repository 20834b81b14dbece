"""Input checks shared by every boundary (action params, config, relation data, lab CLI).

Each check raises ValueError with a message that says what is allowed, so the caller only
has to prefix the field name. Values are echoed clipped (`shown`): a 10 kB value must not
become a 10 kB status line.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

import pydantic

# fullmatch everywhere: `$` would let a trailing newline through.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# a.b.c.d/len, nothing else (ipaddress also takes netmasks and padded lengths).
IPV4_WITH_LENGTH = re.compile(r"\d{1,3}(\.\d{1,3}){3}/\d{1,2}")
_IPV4_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
# Juju's rule for application names: lowercase words joined by '-', no word of digits only.
_JUJU_APPLICATION = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]*[a-z][a-z0-9]*)*")

# OCI image references, after the distribution/reference grammar: [host[:port]/]path[:tag][@digest]
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*(?::[0-9]+)?"
_IMAGE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?",
    re.ASCII,  # \w would take any Unicode letter in a tag
)

SHOWN_MAX = 48
# Addresses no virtual network may use: "this network", loopback, link-local, multicast, reserved.
_SPECIAL = tuple(
    ipaddress.IPv4Network(n)
    for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4")
)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def shown(value: Any, limit: int = SHOWN_MAX) -> str:
    """repr(value), clipped: safe to put in a status line or an action failure."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{clip(text, limit)}{size}"


def dns1123_label(value: str) -> str:
    """Return value if it is a DNS-1123 label (the rule for L2Network and Service names)."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty DNS-1123 label")
    if len(value) > 63:
        raise ValueError(f"must be at most 63 characters, got {len(value)}")
    if not _DNS1123_LABEL.fullmatch(value):
        raise ValueError(
            f"{shown(value)} is not a DNS-1123 label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def dns1123_subdomain(value: str) -> str:
    """Return value if it is a DNS-1123 subdomain: the rule for Kubernetes object names, so
    for L2Networks made outside Juju (helm, kubectl), e.g. `cdn.video-net`."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty DNS-1123 subdomain")
    if len(value) > 253:
        raise ValueError(f"must be at most 253 characters, got {len(value)}")
    if not all(_DNS1123_LABEL.fullmatch(label) for label in value.split(".")):
        raise ValueError(
            f"{shown(value)} is not a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', "
            "each part starting and ending with a letter or digit"
        )
    return value


def application_name(value: str) -> str:
    """A Juju application name, e.g. cdn-router (OSM names one in every primitive)."""
    if not isinstance(value, str) or len(value) > 63 or not _JUJU_APPLICATION.fullmatch(value):
        raise ValueError(
            f"{shown(value)} is not a Juju application name: lowercase letters, digits and '-', "
            "starting with a letter, no part of digits only (e.g. cdn-router)"
        )
    return value


def _special_range(network: ipaddress.IPv4Network) -> ipaddress.IPv4Network | None:
    return next((s for s in _SPECIAL if network.overlaps(s)), None)


def ipv4_prefix(value: str) -> ipaddress.IPv4Network:
    """A network's CIDR, parsed strictly: host bits set, IPv6, a bare address, a prefix too
    wide (/0-/7) or too narrow for hosts (/31, /32), or one in a special range are refused."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"{shown(value)} is not an IPv4 prefix: write it as a.b.c.d/len, e.g. 10.0.1.0/24")
    network = _parse_prefix(value, text)
    if network.prefixlen > 30:
        raise ValueError(f"{shown(value)} leaves no room for hosts: use a prefix length of at most /30")
    if network.prefixlen < 8:
        raise ValueError(f"{shown(value)} is too wide for one network: use a prefix length of /8 or more")
    special = _special_range(network)
    if special is not None:
        raise ValueError(
            f"{shown(value)} overlaps {special} (loopback, link-local, multicast or reserved): "
            "use a private range such as 10.0.1.0/24"
        )
    return network


def route_prefix(value: str) -> ipaddress.IPv4Network:
    """A prefix a member routes to: like a CIDR, but any length from /1 to /32. The default
    route (/0) is refused: it would take over every member's own default route."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"{shown(value)} is not an IPv4 prefix: write it as a.b.c.d/len")
    network = _parse_prefix(value, text)
    if network.prefixlen == 0:
        raise ValueError(f"{shown(value)} is the default route: offer the prefixes you route to instead")
    special = _special_range(network)
    if special is not None:
        raise ValueError(f"{shown(value)} overlaps {special} (loopback, link-local, multicast or reserved)")
    return network


def _parse_prefix(value: Any, text: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            base = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"{shown(value)} has host bits set: did you mean {base}?") from None
        raise ValueError(f"{shown(value)} is not an IPv4 prefix: write it as a.b.c.d/len") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError(f"{shown(value)} is IPv6: only IPv4 prefixes are supported")
    if not IPV4_WITH_LENGTH.fullmatch(text):
        # ipaddress also takes netmasks and padded lengths (/255.255.255.0, /024): be strict.
        raise ValueError(f"{shown(value)} is not in a.b.c.d/len form: did you mean {network}?")
    return network


def unicast_ipv4(value: str) -> ipaddress.IPv4Address:
    """One host's IPv4 address (a Service IP, a gateway): not 0.0.0.0, loopback, link-local,
    multicast, reserved or broadcast."""
    if not isinstance(value, str) or not _IPV4_ADDRESS.fullmatch(value):
        raise ValueError(f"{shown(value)} is not an IPv4 address (a.b.c.d)")
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{shown(value)} is not an IPv4 address (a.b.c.d)") from None
    special = _special_range(ipaddress.IPv4Network(address))
    if special is not None:
        raise ValueError(f"{shown(value)} is in {special}: not a usable host address")
    return address


def image_reference(value: str) -> str:
    """An OCI image reference (`[registry/]path[:tag][@sha256:...]`), e.g. alexdecb/talpa:1.3.8."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be an image reference, e.g. alexdecb/talpa:1.3.8")
    if len(value) > 1024 or not _IMAGE.fullmatch(value):
        raise ValueError(
            f"{shown(value)} is not an image reference: write [registry/]name[:tag][@sha256:digest], "
            "e.g. alexdecb/talpa:1.3.8"
        )
    match = _IMAGE.fullmatch(value)
    assert match is not None
    name = f"{match['domain']}/{match['path']}" if match["domain"] else match["path"]
    if len(name) > 255:
        raise ValueError(f"{shown(value)}: an image name is at most 255 characters")
    return value


def _flag(value: Any) -> bool:
    # Juju and OSM hand booleans typed, or as the words true/false; "yes", 1 and "" are mistakes.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"{shown(value)} is not a boolean: use true or false")


# A boolean field that refuses anything but true/false.
Flag = Annotated[bool, pydantic.BeforeValidator(_flag)]


class ActionParams(pydantic.BaseModel):
    """Base of every action's parameters: unknown ones are refused, and the parameter OSM
    adds to every primitive is accepted (it only says which application runs it)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    application_name: str = ""

    @pydantic.field_validator("application_name")
    @classmethod
    def _application_name(cls, value: str) -> str:
        return application_name(value) if value else value


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
        msg = clip(msg, 200)  # a message that echoes its input in full
        # A whole-model check has no location: its message names the fields itself.
        lines.append(f"{kind} '{clip(loc.replace('_', '-'), 64)}': {msg}" if loc else msg)
    return "; ".join(lines)
