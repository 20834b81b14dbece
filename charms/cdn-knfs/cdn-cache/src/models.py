"""Typed config and action params of the cache: every rule is the core's (l2sm_core.cdn)."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic

from l2sm_core.cdn.origin import base_url
from l2sm_core.cdn.values import (
    Interval,
    OptionalContentName,
    OptionalHttpURL,
    OptionalRate,
    Rate,
    WaitSeconds,
)
from l2sm_core.validation import ActionParams, Flag


def _base_url(value: object) -> object:
    return "" if value in (None, "") else base_url(value)  # type: ignore[arg-type]


class CacheConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    port: pydantic.StrictInt = 80
    origin_url: Annotated[str, pydantic.BeforeValidator(_base_url)] = ""
    sync_interval: Interval = 0
    rate_limit: Rate = 0
    # The KNF library reads this option itself (and says what is wrong with it).
    addresses: str = ""

    @pydantic.field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"{value} is not a TCP port: use 1-65535, e.g. 80 or 443")
        return value


class FetchParams(ActionParams):
    name: OptionalContentName = None
    url: OptionalHttpURL = None
    rate_limit: OptionalRate = None  # None: the origin's pace
    wait: WaitSeconds = 0

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> FetchParams:
        if (self.name is None) == (self.url is None):
            raise ValueError(
                "give exactly one of parameter 'name' (a file of the origin's manifest) or 'url'"
            )
        return self


class ListParams(ActionParams):
    pass


class PurgeParams(ActionParams):
    name: OptionalContentName = None
    all: Flag = False

    @pydantic.model_validator(mode="after")
    def _one_target(self) -> PurgeParams:
        if (self.name is None) == (not self.all):
            raise ValueError("give exactly one of parameter 'name' (a cached file) or 'all=true'")
        return self


class SyncParams(ActionParams):
    wait: WaitSeconds = 0


class ConnectivityParams(ActionParams):
    # Checked by l2sm_core.probe, whose messages name the parameter.
    target: Any
    count: Any = 3
