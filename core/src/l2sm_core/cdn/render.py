"""The CDN workloads' config files, rendered from typed values: nginx for the content server and
the cache, the nftables ruleset for the router. The charms and the lab call the same functions.

The templates are not escaped (nginx and nft have no escaping a template engine knows); every
value is checked before it reaches one instead: numbers are ints, names and paths are drawn from
small character sets without whitespace, quotes, `;`, `{`, `}`, `$` or `#`, so no value can end
a directive or start another.

nginx runs in the foreground because the config says so (`daemon off;`): Pebble starts
`nginx_command(path)` and reloads with `nginx_reload_command(path)` (the pid file is in
`runtime_dir`, which the charm creates before starting nginx).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import jinja2
import pydantic

from l2sm_core.cdn.firewall import Firewall, is_network
from l2sm_core.validation import shown

TEMPLATES = Path(__file__).parent / "templates"
CONTENT_SERVER_TEMPLATE = "content-server.nginx.conf.j2"
CACHE_TEMPLATE = "cache.nginx.conf.j2"
ROUTER_TEMPLATE = "router.nft.j2"

PATH_MAX = 1024
RATE_MAX = 1 << 40  # bytes/s: far beyond any link, and a number nginx's size parser takes
WORKERS_MAX = 64
MANIFEST = "manifest.json"
HEALTHZ = "/healthz"
# The cache's plain-HTTP health server (a Pebble check cannot trust a self-signed certificate).
CACHE_HEALTH_PORT = 8081

# One path segment: no whitespace, quotes, `;{}` (nginx syntax), `$` (nginx variables), `#`.
_PATH = re.compile(r"(/[A-Za-z0-9._@+-]+)+")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=False,  # not HTML: values are checked instead (module docstring)
    undefined=jinja2.StrictUndefined,  # a missing value is a bug, never an empty directive
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def absolute_path(value: str) -> str:
    """A normalised absolute path of plain characters, e.g. /srv/content (never `/` itself)."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"{shown(value)} is not an absolute path (e.g. /srv/content)")
    if len(value) > PATH_MAX:
        raise ValueError(f"is {len(value)} characters long: at most {PATH_MAX}")
    if value == "/":
        raise ValueError("'/' is the whole filesystem: give a directory or file under it")
    if not _PATH.fullmatch(value):
        raise ValueError(
            f"{shown(value)}: use letters, digits and . _ @ + - between single slashes, "
            "no trailing slash (spaces, quotes, ; {{ }} $ and # would break nginx's syntax)"
        )
    if any(part in (".", "..") for part in value.split("/")):
        raise ValueError(f"{shown(value)} has a '.' or '..' part: give the path it resolves to")
    return value


def file_name(value: str) -> str:
    """A file at the top of the content directory, e.g. manifest.json."""
    if not isinstance(value, str) or not _FILE_NAME.fullmatch(value):
        raise ValueError(
            f"{shown(value)} is not a file name: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 255 characters"
        )
    if value.endswith(".partial"):
        raise ValueError(f"{shown(value)} ends in .partial: such files are never served")
    if f"/{value}" == HEALTHZ:
        raise ValueError(f"{HEALTHZ} is the health check's")
    return value


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(f"{directory}/")


AbsolutePath = Annotated[str, pydantic.AfterValidator(absolute_path)]
FileName = Annotated[str, pydantic.AfterValidator(file_name)]
# Strict: True is not port 1, "80" is the caller's to convert.
Port = Annotated[int, pydantic.Field(strict=True, ge=1, le=65535)]
Rate = Annotated[int, pydantic.Field(strict=True, ge=0, le=RATE_MAX)]
Workers = Annotated[int, pydantic.Field(strict=True, ge=1, le=WORKERS_MAX)]


class _Site(pydantic.BaseModel):
    """What both nginx sites share: one port, a content directory served as-is but for the
    files still arriving (`*.partial`, anything under a dot-directory such as `.incoming`)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", strict=True)

    port: Port
    content_dir: AbsolutePath
    # The pid file and nginx's temp directories (nginx makes those it lacks): writable, not served.
    runtime_dir: AbsolutePath
    limit_rate: Rate = 0  # per connection, bytes/s; 0: unlimited
    manifest: FileName = MANIFEST
    workers: Workers | None = None  # None: one per CPU

    @pydantic.model_validator(mode="after")
    def _runtime_not_served(self):
        if _under(self.runtime_dir, self.content_dir) or _under(self.content_dir, self.runtime_dir):
            raise ValueError(
                f"runtime-dir {self.runtime_dir} and content-dir {self.content_dir} must not "
                "contain each other: nginx's pid and temp files would be served"
            )
        return self


class ContentServerSite(_Site):
    """The origin: the content directory on its storage mount, maybe with listings."""

    autoindex: bool = False


class TlsFiles(pydantic.BaseModel):
    """PEM files nginx reads at start and at every reload (renewal: rewrite them, reload)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", strict=True)

    certificate: AbsolutePath
    key: AbsolutePath


class CacheSite(_Site):
    """The cache: serves what it pulled, over HTTP, or HTTPS when `tls` is given. A Pebble check
    cannot trust a self-signed certificate, so with TLS a plain-HTTP server on `health_port`
    answers /healthz (and nothing else); without TLS, health_port is optional."""

    tls: TlsFiles | None = None
    health_port: Port | None = None

    @pydantic.model_validator(mode="after")
    def _ports_and_keys(self):
        if self.tls is not None and self.health_port is None:
            raise ValueError("with TLS, give health-port: the plain-HTTP port of the health check")
        if self.health_port == self.port:
            raise ValueError(f"health-port and port are both {self.port}: use two ports")
        if self.tls is not None:
            for name, path in (("certificate", self.tls.certificate), ("key", self.tls.key)):
                if _under(path, self.content_dir) or _under(path, self.runtime_dir):
                    raise ValueError(
                        f"the TLS {name} {path} is under content-dir or runtime-dir: "
                        "keep it elsewhere (it could be served or overwritten)"
                    )
        return self


def cache_health_port(port: int) -> int:
    """The cache's health port: CACHE_HEALTH_PORT unless the site itself serves there."""
    return CACHE_HEALTH_PORT if port != CACHE_HEALTH_PORT else CACHE_HEALTH_PORT + 1


def render_content_server(site: ContentServerSite) -> str:
    """nginx.conf for the content server (origin)."""
    return _environment.get_template(CONTENT_SERVER_TEMPLATE).render(site=site, healthz=HEALTHZ)


def render_cache(site: CacheSite) -> str:
    """nginx.conf for the cache."""
    return _environment.get_template(CACHE_TEMPLATE).render(site=site, healthz=HEALTHZ)


def nginx_command(config_path: str) -> list[str]:
    """How Pebble starts nginx (argv; shlex.join it for a layer): the config keeps it in the
    foreground, logs to stdout/stderr, and writes its pid under runtime_dir."""
    return ["nginx", "-c", absolute_path(config_path)]


def nginx_reload_command(config_path: str) -> list[str]:
    """After rewriting the config or the certificate: the master re-reads both, keeps serving
    with the old config if the new one fails."""
    return ["nginx", "-c", absolute_path(config_path), "-s", "reload"]


def nginx_test_command(config_path: str) -> list[str]:
    """`nginx -t` on a config about to be reloaded."""
    return ["nginx", "-c", absolute_path(config_path), "-t", "-q"]


# --- the router ---------------------------------------------------------------------------------


def render_ruleset(firewall: Firewall) -> str:
    """The router's nftables ruleset: one file `nft -f` applies atomically, replacing the
    `inet cdn_router` table whole (other tables are left alone)."""
    interfaces = {network.name: network.interface for network in firewall.networks}
    rules = []
    for rule in firewall.rules:
        source, destination = rule.source, rule.destination
        rules.append(
            {
                "name": rule.name,
                # None: any of the router's networks (never its cluster interface). `any` is
                # the keyword even if a network is called so (name that one by its CIDR).
                "inbound": interfaces[source] if is_network(source) else None,
                "outbound": interfaces[destination] if is_network(destination) else None,
                "saddr": source if "/" in source else None,
                "daddr": destination if "/" in destination else None,
                "protocol": rule.protocol,
                "ports": str(rule.port) if rule.port is not None else None,
                "verdict": rule.action,
            }
        )
    return _environment.get_template(ROUTER_TEMPLATE).render(
        table=firewall.TABLE,
        policy=firewall.default_policy,
        networks=firewall.networks,
        cut=[network for network in firewall.networks if network.name in firewall.cut_links],
        rules=rules,
    )
