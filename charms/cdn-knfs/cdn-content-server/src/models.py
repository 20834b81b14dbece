"""Typed config and action params of the content server: every rule is the core's (l2sm_core.cdn)."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic

from l2sm_core.cdn.values import ContentName, HttpURL, OptionalContentName, Rate, Size, TcpPort
from l2sm_core.validation import ActionParams

# An action waits at most this long for its job: longer work is followed with list-content
# or a second call, never minutes inside one action.
MAX_WAIT = 300
# JSON numbers only, or their digits as OSM sends them; "" = do not wait.
Wait = Annotated[int, pydantic.Field(ge=0, le=MAX_WAIT, strict=True)]


def _wait(value: object) -> object:
    if value is None or value == "":
        return 0
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r:.40} is not a number of seconds: use a whole number 0-{MAX_WAIT}")
    return value


WaitSeconds = Annotated[Wait, pydantic.BeforeValidator(_wait)]


class ServerConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    port: TcpPort = 80
    rate_limit: Rate = 0
    autoindex: pydantic.StrictBool = False
    # The KNF library reads this option itself (and says what is wrong with it).
    addresses: str = ""


class GenerateParams(ActionParams):
    name: ContentName
    size: Size
    wait: WaitSeconds = 0


class AddParams(ActionParams):
    url: HttpURL
    name: OptionalContentName = None  # None: the URL's last path segment
    wait: WaitSeconds = 0


class ListParams(ActionParams):
    pass


class RemoveParams(ActionParams):
    name: ContentName


class ConnectivityParams(ActionParams):
    # Checked by l2sm_core.probe, whose messages name the parameter.
    target: Any
    count: Any = 3
