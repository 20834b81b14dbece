"""Schemas of the relation interfaces, used by both sides with `Relation.load/save`.

Field names in the databag are the aliases (dashed); every value is JSON-encoded, as
`Relation.save` writes it. The schemas refuse what would do harm on the other side (an
address no host can have, a route that takes over every member's traffic, an MTU the
attachments cannot carry), so each side can trust what it loads. Messages echo values
clipped (`shown`): they end up in status lines.
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
from typing import Annotated, Any, ClassVar

import pydantic

from l2sm_core.validation import (
    IPV4_WITH_LENGTH,
    Flag,
    dns1123_label,
    ipv4_prefix,
    route_prefix,
    shown,
    unicast_ipv4,
)

# The MTU of L2S-M's veth attachments (the operator's NADs): more is never carried.
ATTACHMENT_MTU = 1400
MIN_MTU = 576  # the least every IPv4 host must take
# A member may route to this many prefixes: enough for a router on many networks, and a
# bound on what one unit can make every other member install.
MAX_OFFERED_PREFIXES = 32
# Bounds on what a network may send, so a broken or hostile provider cannot flood a member.
MAX_REJECTION = 1024
MAX_ROUTES = 1024
NETWORK_TYPES = ("vnet", "ext-vnet", "vlink")  # upstream's L2Network types

_SECRET_ID = re.compile(r"secret:[A-Za-z0-9][A-Za-z0-9/:._-]{0,254}")

# JSON numbers only: a port or an MTU sent as "6633" or true is a mistake on the other side.
StrictPort = Annotated[int, pydantic.Field(strict=True, ge=1, le=65535)]
Mtu = Annotated[int, pydantic.Field(strict=True, ge=MIN_MTU, le=ATTACHMENT_MTU)]


class _Databag(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


def canonical_json(value: Any) -> str:
    """The one way this project writes a databag value: sorted keys, so the same content is
    always the same bytes and a reconcile that changes nothing wakes no one (Juju fires
    relation-changed on any byte change)."""
    return json.dumps(value, sort_keys=True)


class ControllerProviderAppData(_Databag):
    """`l2sm_controller` interface, v0: what the controller application publishes.

    `cluster-ip` is given beside `host` because switch pods may not resolve cluster DNS.
    The REST credentials are never in the databag, only a reference, `credentials-secret`,
    in one of two forms:

    - `secret:<id>` or `secret://<model uuid>/<id>`: a Juju secret granted to the
      relation, holding `username` and `password` (Juju 3.0.3 and later);
    - `kubernetes:<namespace>/<name>`: a Kubernetes Secret (Juju 2.9, which has no Juju
      secrets), holding the keys `controller-credentials.username` and
      `controller-credentials.password`, base64 as every Secret value. A charm deployed
      with `--trust` reads it through the Kubernetes API (`kubernetes_secret` gives the
      namespace and name). Its other keys are the controller's own.

    A controller whose Juju is upgraded from 2.9 moves the credentials into a Juju secret
    and publishes its id instead; readers follow whichever form they find.
    """

    KUBERNETES_PREFIX: ClassVar[str] = "kubernetes:"
    # Juju writes a secret URI with its model's UUID (`secret://<uuid>/<id>`) where the
    # secret may be read from another model, as across an OSM cross-model relation.
    _MODEL_SECRET_ID: ClassVar[re.Pattern[str]] = re.compile(r"secret://[0-9a-f-]{36}/[a-z0-9]{20}")

    host: str = pydantic.Field(description="In-cluster DNS name of the controller Service")
    # The operator looks for switch attachments (NADs) only here: the Overlay must live here too.
    namespace: str
    cluster_ip: str = pydantic.Field(alias="cluster-ip")
    openflow_port: StrictPort = pydantic.Field(alias="openflow-port")
    rest_url: str = pydantic.Field(alias="rest-url")
    ready: Flag
    credentials_secret: str = pydantic.Field(alias="credentials-secret")

    @pydantic.field_validator("cluster_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return str(unicast_ipv4(value))

    @pydantic.field_validator("rest_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @pydantic.field_validator("credentials_secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if _SECRET_ID.fullmatch(value) or cls._MODEL_SECRET_ID.fullmatch(value):
            return value
        if value.startswith(cls.KUBERNETES_PREFIX):
            namespace, slash, name = value.removeprefix(cls.KUBERNETES_PREFIX).partition("/")
            try:
                if not slash:
                    raise ValueError("no '/' between namespace and name")
                dns1123_label(namespace)
                _dns_name(name)
            except ValueError as exc:
                raise ValueError(
                    f"{shown(value)} is not a Kubernetes Secret reference "
                    f"(kubernetes:<namespace>/<name>): {exc}"
                ) from None
            return value
        raise ValueError(
            f"{shown(value)} must be a Juju secret id (secret:...) or a Kubernetes Secret "
            "reference (kubernetes:<namespace>/<name>), never the credentials"
        )

    @property
    def kubernetes_secret(self) -> tuple[str, str] | None:
        """(namespace, name) of the Kubernetes Secret holding the credentials, or None when
        they are in a Juju secret."""
        if not self.credentials_secret.startswith(self.KUBERNETES_PREFIX):
            return None
        namespace, _, name = self.credentials_secret.removeprefix(self.KUBERNETES_PREFIX).partition("/")
        return namespace, name

    @pydantic.field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return dns1123_label(value)

    @pydantic.field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _dns_name(value)


def _dns_name(value: str) -> str:
    if len(value) > 253:
        raise ValueError(f"a DNS name is at most 253 characters, got {len(value)}")
    for label in value.split("."):
        dns1123_label(label)
    return value


def _http_url(value: str) -> str:
    """An http(s) URL with a host and no credentials in it."""
    if len(value) > 2048 or not value.isprintable() or " " in value:
        raise ValueError(f"{shown(value)} is not an http(s) URL")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{shown(value)} is not an http(s) URL with a host, e.g. http://10.152.183.20:8181")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials: they travel in the Juju secret")
    try:
        parts.port  # noqa: B018 - urllib checks the port only when asked
    except ValueError:
        raise ValueError(f"{shown(value)} has a port outside 1-65535") from None
    return value


# -- l2sm_network, v0 -----------------------------------------------------------------------


def interface_address(value: str) -> ipaddress.IPv4Interface:
    """An IPv4 address with its prefix length, e.g. 10.0.1.10/24 (no netmask forms)."""
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"{shown(value)} needs its prefix length (a.b.c.d/len), e.g. 10.0.1.10/24")
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError:
        iface = None
    if iface is None or not IPV4_WITH_LENGTH.fullmatch(value):
        raise ValueError(f"{shown(value)} is not an IPv4 address with prefix length (a.b.c.d/len)")
    # The rules of a network's CIDR (/8-/30) and of a host address on it.
    if not 8 <= iface.network.prefixlen <= 30:
        raise ValueError(f"{shown(value)}: the prefix length must be /8 to /30, as a network's cidr")
    unicast_ipv4(str(iface.ip))
    return iface


def _interface_address(value: str) -> str:
    return str(interface_address(value))


class NetworkRequirerUnitData(_Databag):
    """What each KNF unit asks of a network."""

    # The address wanted, with prefix length; "" takes one from the pool.
    address: str = ""
    # Prefixes this unit routes to (a router offers its other networks); others offer none.
    offered_prefixes: list[str] = pydantic.Field(
        default_factory=list, alias="offered-prefixes", max_length=MAX_OFFERED_PREFIXES
    )

    @pydantic.field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _interface_address(value) if value else ""

    @pydantic.field_validator("offered_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        return [str(route_prefix(prefix)) for prefix in value]


class NetworkInfo(_Databag):
    name: str
    cidr: str = ""  # "" = pure L2: no addresses handed out
    mtu: Mtu
    type: str = "vnet"

    @pydantic.field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dns1123_label(value)

    @pydantic.field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return str(ipv4_prefix(value)) if value else ""

    @pydantic.field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in NETWORK_TYPES:
            raise ValueError(f"{shown(value)} is not an L2S-M network type ({', '.join(NETWORK_TYPES)})")
        return value


class Route(_Databag):
    prefix: str
    via: str

    @pydantic.field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return str(route_prefix(value))

    @pydantic.field_validator("via")
    @classmethod
    def _via(cls, value: str) -> str:
        return str(unicast_ipv4(value))


class NetworkProviderAppData(_Databag):
    """What the network answers, per relation."""

    network: NetworkInfo
    # unit name -> address with prefix length, for the units of this relation
    assignments: dict[str, str] = pydantic.Field(default_factory=dict)
    # unit name -> why its request was refused (bounded: it ends up in a status line)
    rejections: dict[str, Annotated[str, pydantic.Field(max_length=MAX_REJECTION)]] = pydantic.Field(
        default_factory=dict
    )
    # every member's offered prefix (but this network's own), via that member, across relations
    routes: list[Route] = pydantic.Field(default_factory=list, max_length=MAX_ROUTES)

    @pydantic.field_validator("assignments")
    @classmethod
    def _assignments(cls, value: dict[str, str]) -> dict[str, str]:
        return {unit: _interface_address(address) for unit, address in value.items()}

    @pydantic.model_validator(mode="after")
    def _assignments_on_the_network(self) -> NetworkProviderAppData:
        cidr = self.network.cidr
        if self.assignments and not cidr:
            raise ValueError("assignments: a pure L2 network (no cidr) hands out no addresses")
        if not cidr:
            return self
        net = ipaddress.IPv4Network(cidr)
        for unit, address in sorted(self.assignments.items()):
            iface = ipaddress.IPv4Interface(address)
            if iface.network != net or iface.ip in (net.network_address, net.broadcast_address):
                raise ValueError(f"assignments: {shown(unit)} {address} is not a host address of {cidr}")
        return self
