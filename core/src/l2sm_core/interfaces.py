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
