"""The `cdn_origin` interface, v0: what a content server (origin) tells its caches.

Pure schema, so the content-server and cache charms and the lab read and write the same
thing. The provider publishes, in its application databag (JSON values, `canonical_json`):

- `urls`: the base URL of the content on each of the origin's network addresses, e.g.
  `["http://10.0.2.10:80/"]` (one per network the origin joined; a cache picks the one it
  can route to, and the lab the same);
- `manifest`: the manifest's file name under each base URL (`manifest.json`).

A cache fetches `<base>/<name>` for each entry of `<base>/<manifest>`, verifying size and
sha256 (l2sm_core.cdn.content).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Annotated

import pydantic

from l2sm_core.cdn import values

INTERFACE = "cdn_origin"
MAX_URLS = 32  # one per network the origin is on: a bound on what a cache will try


def base_url(value: str) -> str:
    """An http(s) URL naming a directory: ends in '/', no query or fragment."""
    values.http_url(value)
    parts = urllib.parse.urlsplit(value)
    if parts.query or parts.fragment or not parts.path.endswith("/"):
        raise ValueError(
            f"{value[:64]!r} is not a base URL: end it with '/' and leave out ?query and #fragment, "
            "e.g. http://10.0.2.10:80/"
        )
    return value


def manifest_name(value: str) -> str:
    """A plain JSON file name under the base URL, e.g. manifest.json."""
    if (
        not isinstance(value, str)
        or not 6 <= len(value) <= values.MAX_NAME
        or not value.isascii()
        or not value.isprintable()
        or any(c in value for c in "/\\?#% ")
        or value.startswith(".")
        or not value.endswith(".json")
    ):
        raise ValueError(f"{value!r:.64} is not a manifest file name: e.g. {values.MANIFEST_NAME}")
    return value


class OriginProviderAppData(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    urls: list[Annotated[str, pydantic.AfterValidator(base_url)]] = pydantic.Field(
        min_length=1, max_length=MAX_URLS
    )
    manifest: Annotated[str, pydantic.AfterValidator(manifest_name)] = values.MANIFEST_NAME

    def manifest_urls(self) -> list[str]:
        return [urllib.parse.urljoin(url, self.manifest) for url in self.urls]


def pick_url(urls: list[str], routable: list[str]) -> str:
    """The first base URL whose host lies on a prefix the cache can reach (its networks' own
    and the routes the KNF library installed); else the first one (names, or no network
    joined: the cluster may still route it, and the status says which URL is in use). The
    cache charm and the lab pick the same way."""
    networks = [ipaddress.IPv4Network(prefix) for prefix in routable]
    for url in urls:
        try:
            host = ipaddress.IPv4Address(urllib.parse.urlsplit(url).hostname or "")
        except ValueError:
            continue
        if any(host in network for network in networks):
            return url
    return urls[0]
