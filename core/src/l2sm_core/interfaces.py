"""Schemas of the relation interfaces, used by both sides with `Relation.load/save`.

Field names in the databag are the aliases (dashed); every value is JSON-encoded, as
`Relation.save` writes it.
"""

from __future__ import annotations

import ipaddress

import pydantic

from l2sm_core.validation import dns1123_label


class _Databag(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


class ControllerProviderAppData(_Databag):
    """`l2sm_controller` interface, v0: what the controller application publishes.

    `cluster-ip` is given beside `host` because switch pods may not resolve cluster DNS.
    The REST credentials are never in the databag: only the id of a Juju secret (granted to
    the relation) holding `username` and `password`.
    """

    host: str = pydantic.Field(description="In-cluster DNS name of the controller Service")
    # The operator looks for switch attachments (NADs) only here: the Overlay must live here too.
    namespace: str
    cluster_ip: str = pydantic.Field(alias="cluster-ip")
    openflow_port: int = pydantic.Field(alias="openflow-port", ge=1, le=65535)
    rest_url: str = pydantic.Field(alias="rest-url")
    ready: bool
    credentials_secret: str = pydantic.Field(alias="credentials-secret")

    @pydantic.field_validator("cluster_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        ipaddress.IPv4Address(value)
        return value

    @pydantic.field_validator("rest_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @pydantic.field_validator("credentials_secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if not value.startswith("secret:"):
            raise ValueError("must be a Juju secret id (secret:...), never the credentials")
        return value

    @pydantic.field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return dns1123_label(value)

    @pydantic.field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        for label in value.split("."):
            dns1123_label(label)
        return value


# -- l2sm_network, v0 -----------------------------------------------------------------------


def _interface_address(value: str) -> str:
    """An IPv4 address with its prefix length, e.g. 10.0.1.10/24."""
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address with prefix length (a.b.c.d/len)") from None
    if "/" not in value:
        raise ValueError(f"{value!r} needs its prefix length, e.g. {value}/24")
    return str(iface)


class NetworkRequirerUnitData(_Databag):
    """What each KNF unit asks of a network."""

    # The address wanted, with prefix length; "" takes one from the pool.
    address: str = ""
    # Prefixes this unit routes to (a router offers its other networks); others offer none.
    offered_prefixes: list[str] = pydantic.Field(default_factory=list, alias="offered-prefixes")

    @pydantic.field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _interface_address(value) if value else ""

    @pydantic.field_validator("offered_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        out = []
        for prefix in value:
            try:
                out.append(str(ipaddress.IPv4Network(prefix, strict=True)))
            except ValueError:
                raise ValueError(f"{prefix!r} is not an IPv4 prefix (a.b.c.d/len, host bits clear)") from None
        return out


class NetworkInfo(_Databag):
    name: str
    cidr: str = ""  # "" = pure L2: no addresses handed out
    mtu: int = pydantic.Field(ge=576, le=9000)
    type: str = "vnet"

    @pydantic.field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dns1123_label(value)

    @pydantic.field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        if value:
            ipaddress.IPv4Network(value, strict=True)
        return value


class Route(_Databag):
    prefix: str
    via: str

    @pydantic.field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        ipaddress.IPv4Network(value, strict=True)
        return value

    @pydantic.field_validator("via")
    @classmethod
    def _via(cls, value: str) -> str:
        ipaddress.IPv4Address(value)
        return value


class NetworkProviderAppData(_Databag):
    """What the network answers, per relation."""

    network: NetworkInfo
    # unit name -> address with prefix length, for the units of this relation
    assignments: dict[str, str] = pydantic.Field(default_factory=dict)
    # unit name -> why its request was refused
    rejections: dict[str, str] = pydantic.Field(default_factory=dict)
    # every member's offered prefix (but this network's own), via that member, across relations
    routes: list[Route] = pydantic.Field(default_factory=list)

    @pydantic.field_validator("assignments")
    @classmethod
    def _assignments(cls, value: dict[str, str]) -> dict[str, str]:
        return {unit: _interface_address(address) for unit, address in value.items()}
