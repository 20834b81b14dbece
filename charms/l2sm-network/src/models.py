"""Typed config and action params of a network application."""

from __future__ import annotations

import ipaddress

import pydantic

from l2sm_core.knf import ATTACHMENT_MTU, MIN_MTU
from l2sm_core.validation import ActionParams, dns1123_label, ipv4_prefix, shown, unicast_ipv4
from l2sm_knf.l2sm_network import NETWORK_TYPES

MAX_RESERVED = 256  # a list longer than this is a mistake (a pasted file), not a plan


class NetworkConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    network_name: str = ""
    cidr: str = ""
    mtu: int = pydantic.Field(ATTACHMENT_MTU, ge=MIN_MTU, le=ATTACHMENT_MTU, strict=True)
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

    @pydantic.field_validator("reserved")
    @classmethod
    def _reserved_list(cls, value: str) -> str:
        """Normalised to `a.b.c.d,a.b.c.d` (sorted, once each); a bad entry is named."""
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if len(parts) > MAX_RESERVED:
            raise ValueError(f"{len(parts)} addresses: at most {MAX_RESERVED}")
        addresses = set()
        for part in parts:
            try:
                addresses.add(unicast_ipv4(part))
            except ValueError as exc:
                raise ValueError(f"{exc}; list addresses comma separated, e.g. 10.0.1.1,10.0.1.2") from None
        return ",".join(str(a) for a in sorted(addresses))

    @pydantic.field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value in NETWORK_TYPES and value != "vnet":
            raise ValueError(f"{value!r} networks are not supported yet: use vnet")
        if value != "vnet":
            raise ValueError(f"{shown(value)} is not an L2S-M network type: use vnet")
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
                listed = ", ".join(outside[:3]) + (
                    f" and {len(outside) - 3} more" if len(outside) > 3 else ""
                )
                raise ValueError(f"option 'reserved': {listed} not in {self.cidr} (option 'cidr')")
        return self

    @property
    def reserved_addresses(self) -> list[str]:
        return self.reserved.split(",") if self.reserved else []


class ShowParams(ActionParams):
    pass
