"""Typed config and action params of the switch fabric."""

from __future__ import annotations

import pydantic

from l2sm_core.manifests.switch import DEFAULT_SWITCH_IMAGE
from l2sm_core.naming import overlay_name
from l2sm_core.topology import FULL_MESH, parse_nodes
from l2sm_core.validation import ActionParams, image_reference


class SwitchConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    nodes: str = ""
    topology: str = FULL_MESH
    # Strict: a boolean is an int to Python, and `true` is not an interface count.
    interfaces_per_node: int = pydantic.Field(10, ge=1, le=64, strict=True)
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
        return overlay_name(value) if value else value

    @pydantic.field_validator("switch_image")
    @classmethod
    def _image(cls, value: str) -> str:
        return image_reference(value)

    @pydantic.field_validator("topology")
    @classmethod
    def _topology(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"must be {FULL_MESH} or node-a:node-b links")
        return value.strip()


class ShowTopologyParams(ActionParams):
    pass
