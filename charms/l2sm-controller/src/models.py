"""Typed config and action parameters: everything from the user is checked here, once."""

from __future__ import annotations

import pydantic

from l2sm_core.validation import ActionParams, Flag, dns1123_label, dns1123_subdomain, ipv4_prefix


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


class CharmConfig(_Model):
    # Strict: Juju hands ints typed; "30", 30.0 or true would be somebody's mistake.
    webhook_certificate_days: int = pydantic.Field(365, ge=7, le=3650, strict=True)
    webhook_renew_days: int = pydantic.Field(30, ge=1, le=365, strict=True)

    @pydantic.model_validator(mode="after")
    def _renew_before_expiry(self) -> CharmConfig:
        if self.webhook_renew_days >= self.webhook_certificate_days:
            raise ValueError(
                f"webhook-renew-days ({self.webhook_renew_days}) must be less than "
                f"webhook-certificate-days ({self.webhook_certificate_days})"
            )
        return self


_Params = ActionParams


class NoParams(_Params):
    pass


class NetworkParams(_Params):
    """A network this charm makes: a DNS-1123 label, as l2sm-network's names."""

    name: str

    @pydantic.field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dns1123_label(value)


class ExistingNetworkParams(_Params):
    """Any L2Network: networks made with helm or kubectl may have dots (`cdn.video-net`)."""

    name: str

    @pydantic.field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dns1123_subdomain(value)


class CreateNetworkParams(NetworkParams):
    cidr: str = ""

    @pydantic.field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        # Empty means pure L2; anything else (even blanks) must be a usable IPv4 prefix.
        return str(ipv4_prefix(value)) if value else ""


class DeleteNetworkParams(ExistingNetworkParams):
    force: Flag = False
