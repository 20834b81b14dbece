"""Typed config of the switch fabric."""

from __future__ import annotations

import pydantic

from l2sm_core.manifests.switch import DEFAULT_SWITCH_IMAGE
from l2sm_core.topology import FULL_MESH, parse_nodes
from l2sm_core.validation import dns1123_label


class SwitchConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    nodes: str = ""
    topology: str = FULL_MESH
    interfaces_per_node: int = pydantic.Field(10, ge=1, le=64)
    overlay_name: str = ""
    switch_image: str = DEFAULT_SWITCH_IMAGE

    @pydantic.field_validator("nodes")
    @classmethod
    def _nodes(cls, value: str) -> str:
        parse_nodes(value)
        return value

    @pydantic.field_validator("overlay_name")
    @classmethod
    def _overlay(cls, value: str) -> str:
        if not value:
            return value
        dns1123_label(value)
        # Upstream takes the port number from the text after the first "veth" in a NAD name.
        if "veth" in value:
            raise ValueError(f"{value!r} contains 'veth', which breaks L2S-M's port numbering")
        if len(value) > 50:
            raise ValueError("must be at most 50 characters (NAD names append -vethN)")
        return value

    @pydantic.field_validator("switch_image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not an image reference")
        return value

    @pydantic.field_validator("topology")
    @classmethod
    def _topology(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"must be {FULL_MESH} or node-a:node-b links")
        return value.strip()


class ShowTopologyParams(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
    # OSM adds application-name to every primitive.
    application_name: str = ""
