"""Typed config and action params of the content server: every rule is the core's (l2sm_core.cdn)."""

from __future__ import annotations

from typing import Any

import pydantic

from l2sm_core.cdn.values import ContentName, HttpURL, OptionalContentName, Rate, Size, TcpPort, WaitSeconds
from l2sm_core.validation import ActionParams


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
