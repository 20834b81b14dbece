"""Typed config and action params of a network application."""

from __future__ import annotations

import ipaddress

import pydantic

from l2sm_core.validation import dns1123_label, ipv4_prefix

ATTACHMENT_MTU = 1400  # the MTU of L2S-M's veth attachments (upstream NADs)
UPSTREAM_TYPES = ("vnet", "ext-vnet", "vlink")


class NetworkConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    network_name: str = ""
    cidr: str = ""
    mtu: int = pydantic.Field(ATTACHMENT_MTU, ge=576, le=ATTACHMENT_MTU)
    reserved: str = ""
    type: str = "vnet"

    @pydantic.field_validator("network_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dns1123_label(value) if value else ""

    @pydantic.field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return str(ipv4_prefix(value)) if value.strip() else ""

    @pydantic.field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value in UPSTREAM_TYPES and value != "vnet":
            raise ValueError(f"{value!r} networks are not supported yet: use vnet")
        if value != "vnet":
            raise ValueError(f"{value!r} is not an L2S-M network type: use vnet")
        return value

    @pydantic.model_validator(mode="after")
    def _reserved(self) -> NetworkConfig:
        addresses = self.reserved_addresses
        if addresses and not self.cidr:
            raise ValueError(
                "option 'reserved' needs option 'cidr': a pure L2 network hands out no addresses"
            )
        if self.cidr:
            net = ipaddress.IPv4Network(self.cidr)
            outside = [a for a in addresses if ipaddress.IPv4Address(a) not in net]
            if outside:
                raise ValueError(f"option 'reserved': {', '.join(outside)} not in {self.cidr}")
        return self

    @property
    def reserved_addresses(self) -> list[str]:
        result = []
        for part in (p.strip() for p in self.reserved.split(",")):
            if not part:
                continue
            try:
                result.append(str(ipaddress.IPv4Address(part)))
            except ValueError:
                raise ValueError(f"option 'reserved': {part!r} is not an IPv4 address") from None
        return result


class ShowParams(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
    application_name: str = ""  # OSM adds it to every primitive
