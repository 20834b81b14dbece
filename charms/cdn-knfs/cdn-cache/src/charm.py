#!/usr/bin/env python3
"""The CDN's cache: pulls content from its origin (resumable, verified against the origin's
manifest) and serves the complete files with nginx, over HTTPS when a tls-certificates
provider is integrated (Juju 3), HTTP otherwise.

Two workload containers share the `content` storage: `nginx` serves it, `jobs` (a python
image) runs l2sm_core.cdn.jobs under Pebble: `sync` (every sync-interval seconds), and the
one-shot `fetch` and `sync-now` the actions start. Files arrive as NAME.partial beside the
complete ones and are renamed into place once verified; nginx never serves a .partial.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shlex
import time
import urllib.parse
from typing import Any

import charmlibs.interfaces.tls_certificates as tls
import ops
from models import CacheConfig, ConnectivityParams, FetchParams, ListParams, PurgeParams, SyncParams

from l2sm_charmlib import workload
from l2sm_charmlib.hints import integrate_command
from l2sm_charmlib.reconcile import Blocked, ReconcilingCharm, Refused, Waiting
from l2sm_core import probe
from l2sm_core.cdn import jobs, render, values
from l2sm_core.cdn import results as cdn_results
from l2sm_core.cdn.origin import OriginProviderAppData, pick_url
from l2sm_core.validation import clip
from l2sm_knf import L2smNetworks
from l2sm_knf.databag import InvalidDatabag, load_databag
from l2sm_knf.kube import KubeForbidden, KubeNotFound

logger = logging.getLogger(__name__)

ORIGIN = "origin"
CERTIFICATES = "certificates"
NGINX = "nginx"
JOBS = "jobs"
LAYER = "cdn-cache"

CONTENT_DIR = "/srv/content"  # the `content` storage, in both workload containers
NGINX_CONF = "/etc/nginx/cdn-cache.conf"
RUNTIME_DIR = "/run/cdn-cache"
TLS_DIR = "/etc/nginx/tls"  # outside content and runtime dirs: never served nor overwritten
CERT_FILE = f"{TLS_DIR}/cert.pem"
KEY_FILE = f"{TLS_DIR}/key.pem"
STATUS_DIR = "/var/lib/cdn-cache"  # job status files, in the jobs container (not served)
FETCH = "fetch"
SYNC = "sync"
SYNC_NOW = "sync-now"
RETRIES = 5  # a cut transfer resumes this many times within one job
POLL = 0.5  # seconds between reads of a job's status file while an action waits


def status_file(job: str) -> str:
    return workload.status_path(STATUS_DIR, job)


class CdnCacheCharm(ReconcilingCharm):
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(origin="", routable="[]")
        self.networks = L2smNetworks(
            self, "networks", addresses=lambda: str(self.config.get("addresses", ""))
        )
        # The library keeps the private key in a Juju secret: Juju 2.9 has none (HTTP only).
        self.tls: tls.TLSCertificatesRequiresV4 | None = None
        if self.model.juju_version.has_secrets:
            self.tls = tls.TLSCertificatesRequiresV4(
                self,
                CERTIFICATES,
                certificate_requests=[self._certificate_request()],
                refresh_events=[self.on.config_changed],
            )
            framework.observe(self.tls.on.certificate_available, self._reconcile)
        for event in (
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.start,
            self.on.update_status,
            self.on.leader_elected,
            self.on[NGINX].pebble_ready,
            self.on[JOBS].pebble_ready,
            self.on[NGINX].pebble_check_failed,
            self.on[NGINX].pebble_check_recovered,
            self.on.content_storage_attached,
            self.on[ORIGIN].relation_changed,
            self.on[ORIGIN].relation_broken,
            self.on[CERTIFICATES].relation_broken,
        ):
            framework.observe(event, self._reconcile)
        for event in (self.networks.on.ready, self.networks.on.changed, self.networks.on.lost):
            framework.observe(event, self._on_network)
        framework.observe(self.on.fetch_content_action, self._on_fetch)
        framework.observe(self.on.list_content_action, self._on_list)
        framework.observe(self.on.purge_action, self._on_purge)
        framework.observe(self.on.sync_now_action, self._on_sync_now)
        framework.observe(self.on.check_connectivity_action, self._on_check_connectivity)

    # -- inputs -------------------------------------------------------------------------------

    def _config(self) -> CacheConfig:
        return self.typed_config(CacheConfig)

    def _certificate_request(self) -> tls.CertificateRequestAttributes:
        # Names the cluster gives the unit's pod and the application's service; the L2S-M
        # addresses are not known when the request is built (users of the PoC pass -k or --resolve).
        number = self.unit.name.rpartition("/")[2]
        app, model = self.app.name, self.model.name
        return tls.CertificateRequestAttributes(
            common_name=app,
            sans_dns=frozenset(
                {
                    app,
                    f"{app}.{model}.svc.cluster.local",
                    f"{app}-{number}.{app}-endpoints.{model}.svc.cluster.local",
                }
            ),
        )

    def _origin(self, config: CacheConfig) -> tuple[OriginProviderAppData | None, str | None]:
        """The origin's URLs (origin-url first, else the relation), and what is wrong with
        the relation's data if anything (the last good data is returned then)."""
        if config.origin_url:
            return OriginProviderAppData(urls=[config.origin_url]), None
        relation = self.model.get_relation(ORIGIN)
        if relation is None or relation.app is None:
            return None, None
        last = OriginProviderAppData.model_validate_json(self._stored.origin) if self._stored.origin else None
        if "urls" not in relation.data[relation.app]:
            return last, None  # not published yet
        try:
            return load_databag(relation, OriginProviderAppData, relation.app), None
        except InvalidDatabag as exc:
            return last, f"bad data on relation '{ORIGIN}' from {relation.app.name}: {exc}"

    def _routable(self) -> list[str]:
        return json.loads(self._stored.routable)

    def _base(self, origin: OriginProviderAppData) -> str:
        return pick_url(list(origin.urls), self._routable())

    def _manifest_url(self, origin: OriginProviderAppData) -> str:
        return urllib.parse.urljoin(self._base(origin), origin.manifest)

    def _no_origin(self) -> str:
        hint = integrate_command(self, f"{self.app.name}:{ORIGIN}", "cdn-content-server")
        return f"no origin: integrate with a content server ({hint}) or set option 'origin-url'"

    # -- reconcile ----------------------------------------------------------------------------

    def _on_network(self, event: ops.EventBase) -> None:
        # Memberships are read only in dispatches the KNF library reconciles: keep the prefixes
        # this unit reaches for the others (an action, an origin relation change).
        prefixes = set()
        for m in self.networks.memberships:
            if m.address:
                prefixes.add(str(ipaddress.IPv4Interface(m.address).network))
            prefixes.update(prefix for prefix, _ in m.routes)
        self._stored.routable = json.dumps(sorted(prefixes))
        self._reconcile(event)

    def _reconcile(self, event: ops.EventBase) -> None:
        try:
            config = self._config()
            origin, _ = self._origin(config)
            if self.model.get_relation(ORIGIN) is None:
                self._stored.origin = ""  # a later origin's empty databag is not this one's
            elif origin is not None and not config.origin_url:
                self._stored.origin = origin.model_dump_json()
            self._configure_nginx(config)
            self._configure_jobs(config, origin)
        except (Blocked, Waiting, KubeNotFound, KubeForbidden) as exc:
            self.record_stop(exc)

    def _site(self, config: CacheConfig, tls_on: bool) -> render.CacheSite:
        return render.CacheSite(
            port=config.port,
            content_dir=CONTENT_DIR,
            runtime_dir=RUNTIME_DIR,
            limit_rate=config.rate_limit,
            tls=render.TlsFiles(certificate=CERT_FILE, key=KEY_FILE) if tls_on else None,
            health_port=render.cache_health_port(config.port),
        )

    def _certificate(self) -> tuple[str, str] | None:
        """(full chain PEM, key PEM) of the certificate assigned to this unit, if any."""
        if self.tls is None or self.model.get_relation(CERTIFICATES) is None:
            return None
        certificates, key = self.tls.get_assigned_certificates()
        if not certificates or key is None:
            return None
        assigned = certificates[0]
        chain = [str(assigned.certificate)] + [str(c) for c in assigned.chain if c != assigned.certificate]
        return "\n".join(chain) + "\n", str(key) + "\n"

    def _configure_nginx(self, config: CacheConfig) -> None:
        nginx = self.unit.get_container(NGINX)
        if not nginx.can_connect():
            raise Waiting("waiting for the nginx container")
        certificate = self._certificate()
        site = self._site(config, certificate is not None)
        changed = False
        if certificate is not None:
            changed |= workload.push_if_changed(nginx, CERT_FILE, certificate[0], 0o644)
            changed |= workload.push_if_changed(nginx, KEY_FILE, certificate[1], 0o600)
        changed |= workload.push_if_changed(nginx, NGINX_CONF, render.render_cache(site), 0o644)
        nginx.make_dir(RUNTIME_DIR, make_parents=True)
        layer = self._nginx_layer(site)
        running = NGINX in nginx.get_services(NGINX) and nginx.get_services(NGINX)[NGINX].is_running()
        if changed and running:
            # A renewed certificate or a new config: nginx re-reads both, without dropping users.
            workload.test_or_forget(
                nginx, render.nginx_test_command(NGINX_CONF), "nginx refuses the config", NGINX_CONF
            )
            workload.run_or_blocked(nginx, render.nginx_reload_command(NGINX_CONF), "nginx did not reload")
        if workload.plan_differs(nginx, layer):
            nginx.add_layer(LAYER, layer, combine=True)
            nginx.replan()
        elif not running:
            nginx.start(NGINX)

    def _nginx_layer(self, site: render.CacheSite) -> ops.pebble.Layer:
        layer: ops.pebble.LayerDict = {
            "summary": "cdn-cache nginx",
            "services": {
                NGINX: {
                    "override": "replace",
                    "summary": "serves the complete files of the content storage",
                    "command": shlex.join(render.nginx_command(NGINX_CONF)),
                    "startup": "enabled",
                }
            },
            "checks": {
                "nginx-up": {
                    "override": "replace",
                    "level": "alive",
                    "period": "10s",
                    "threshold": 3,
                    "http": {"url": f"http://localhost:{site.health_port}{render.HEALTHZ}"},
                }
            },
        }
        return ops.pebble.Layer(layer)

    def _configure_jobs(self, config: CacheConfig, origin: OriginProviderAppData | None) -> None:
        worker = self.unit.get_container(JOBS)
        if not worker.can_connect():
            raise Waiting("waiting for the jobs container")
        for rel, local in jobs.job_files().items():
            workload.push_if_changed(worker, f"{jobs.JOB_ROOT}/{rel}", local.read_text(), 0o644)
        worker.make_dir(STATUS_DIR, make_parents=True)
        if origin is None:
            # Nothing to follow: a sync left running from an earlier origin stops.
            if SYNC in worker.get_services(SYNC) and worker.get_services(SYNC)[SYNC].is_running():
                worker.stop(SYNC)
            return
        layer = self._jobs_layer(config, origin)
        if workload.plan_differs(worker, layer):
            worker.add_layer(LAYER, layer, combine=True)
            worker.replan()
        if not config.sync_interval and worker.get_services(SYNC)[SYNC].is_running():
            worker.stop(SYNC)  # replan leaves a service made `disabled` running

    def _jobs_layer(self, config: CacheConfig, origin: OriginProviderAppData) -> ops.pebble.Layer:
        command = jobs.job_command(
            "sync",
            origin_manifest=self._manifest_url(origin),
            dest=CONTENT_DIR,
            interval=config.sync_interval,
            retries=RETRIES,
            status=status_file(SYNC),
        )
        # No Pebble check for the jobs: sync may be disabled and the others are one-shot, so a
        # check would be down by design. Their status files say how they went (see assess).
        layer: ops.pebble.LayerDict = {
            "summary": "cdn-cache jobs",
            "services": {
                SYNC: {
                    "override": "replace",
                    "summary": "follows the origin's manifest every sync-interval seconds",
                    "command": command,
                    "startup": "enabled" if config.sync_interval else "disabled",
                }
            },
        }
        return ops.pebble.Layer(layer)

    # -- status -------------------------------------------------------------------------------

    def assess(self) -> ops.StatusBase:
        config = self._config()
        network = self.networks.status()
        if isinstance(network, ops.BlockedStatus):
            raise Blocked(network.message)
        if isinstance(network, (ops.WaitingStatus, ops.MaintenanceStatus)):
            return network
        origin, problem = self._origin(config)
        if problem:
            kept = f"; keeping {self._base(origin)}" if origin else ""
            raise Blocked(clip(problem + kept, 400))
        if origin is None:
            relation = self.model.get_relation(ORIGIN)
            if relation is not None:
                # Blocked, not Waiting: an origin without an L2S-M address publishes nothing,
                # and OSM waits for every unit to be active or blocked.
                origin_app = relation.app.name if relation.app else "the origin"
                raise Blocked(
                    f"{origin_app} has published no URL yet: it needs an address on a network "
                    "(see its status)"
                )
            raise Blocked(self._no_origin())
        nginx = self.unit.get_container(NGINX)
        if not nginx.can_connect():
            raise Waiting("waiting for the nginx container")
        for check in nginx.get_checks("nginx-up").values():
            if check.status == ops.pebble.CheckStatus.DOWN:
                raise Blocked(
                    "nginx fails its health check: see `juju debug-log` (Pebble logs nginx's errors)"
                )
        https = self._certificate() is not None
        files = self._complete_count(nginx)
        parts = [f"{'HTTPS' if https else 'HTTP'} :{config.port}, {files} files from {self._base(origin)}"]
        if self.model.get_relation(CERTIFICATES) is not None and not https:
            parts.append(
                "HTTPS needs Juju 3 (secrets): serving HTTP"
                if self.tls is None
                else "certificate requested: serving HTTP meanwhile"
            )
        if config.sync_interval:
            parts.append(f"sync every {config.sync_interval}s")
            last = self._job_status(SYNC)
            if last and last.get("state") == "failed":
                parts.append(f"last sync failed: {last.get('error')}")
        parts.append(network.message)
        return ops.ActiveStatus(clip("; ".join(parts), 400))

    def _complete_count(self, container: ops.Container) -> int:
        return len(self._scan(container)[0])

    def _jobs(self, worker: ops.Container) -> workload.Jobs:
        # _sleep looked up at call time: the tests stand in for the job's progress there.
        return workload.Jobs(worker, STATUS_DIR, self.app.name, poll=POLL, sleep=lambda s: _sleep(s))

    def _job_status(self, job: str) -> dict[str, Any] | None:
        worker = self.unit.get_container(JOBS)
        return self._jobs(worker).status(job) if worker.can_connect() else None

    # -- actions ------------------------------------------------------------------------------

    def _on_fetch(self, event: ops.ActionEvent) -> None:
        self.run_action(event, FetchParams, self._fetch, leader_only=False)

    def _on_list(self, event: ops.ActionEvent) -> None:
        self.run_action(event, ListParams, self._list, leader_only=False)

    def _on_purge(self, event: ops.ActionEvent) -> None:
        self.run_action(event, PurgeParams, self._purge, leader_only=False)

    def _on_sync_now(self, event: ops.ActionEvent) -> None:
        self.run_action(event, SyncParams, self._sync_now, leader_only=False)

    def _on_check_connectivity(self, event: ops.ActionEvent) -> None:
        self.run_action(event, ConnectivityParams, self._check_connectivity, leader_only=False)

    def _require_origin(self) -> OriginProviderAppData:
        origin, _ = self._origin(self._config())
        if origin is None:
            raise Refused(self._no_origin())
        return origin

    def _worker(self) -> ops.Container:
        worker = self.unit.get_container(JOBS)
        if not worker.can_connect():
            raise Refused("the jobs container is not up yet: try again in a moment")
        return worker

    def _running(self, worker: ops.Container, job: str) -> bool:
        services = worker.get_services(job)
        return job in services and services[job].is_running()

    def _running_jobs(self, worker: ops.Container) -> dict[str, dict[str, Any] | None]:
        """The jobs running now, with their status."""
        return {job: self._job_status(job) for job in (FETCH, SYNC, SYNC_NOW) if self._running(worker, job)}

    def _fetch(self, params: FetchParams) -> dict[str, Any]:
        origin = self._require_origin()
        try:
            name, url = cdn_results.fetch_source(self._base(origin), params.name, params.url)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        worker = self._worker()
        conflict = cdn_results.fetch_conflict(name, self._running_jobs(worker))
        if conflict:
            raise Refused(conflict)
        # Verified against the origin's manifest either way: a name it does not list fails.
        command = jobs.job_command(
            "fetch",
            url=url,
            dest=CONTENT_DIR,
            name=name,
            manifest=self._manifest_url(origin),
            rate=values.render_rate(params.rate_limit) if params.rate_limit else None,
            retries=RETRIES,
            status=status_file(FETCH),
        )
        status = self._jobs(worker).start(FETCH, command, params.wait)
        try:
            return cdn_results.fetch_results(name, url, status)
        except ValueError as exc:
            raise Refused(str(exc)) from None

    def _sync_now(self, params: SyncParams) -> dict[str, Any]:
        origin = self._require_origin()
        worker = self._worker()
        if self._running(worker, SYNC_NOW):
            raise Refused("a sync-now round is running: wait for it")
        command = jobs.job_command(
            "sync",
            origin_manifest=self._manifest_url(origin),
            dest=CONTENT_DIR,
            interval=0,
            retries=RETRIES,
            status=status_file(SYNC_NOW),
        )
        status = self._jobs(worker).start(SYNC_NOW, command, params.wait)
        try:
            return cdn_results.sync_now_results(self._manifest_url(origin), status)
        except ValueError as exc:
            raise Refused(str(exc)) from None

    def _scan(self, container: ops.Container) -> tuple[dict[str, int], dict[str, int]]:
        """(complete files, partial downloads) of the content directory: name -> bytes."""
        try:
            entries = container.list_files(CONTENT_DIR)
        except ops.pebble.APIError:
            return {}, {}
        return cdn_results.cache_files(
            (e.name, e.size or 0) for e in entries if e.type == ops.pebble.FileType.FILE
        )

    def _list(self, _: ListParams) -> dict[str, Any]:
        return cdn_results.cache_listing(*self._scan(self._worker()))

    def _purge(self, params: PurgeParams) -> dict[str, Any]:
        worker = self._worker()
        complete, partial = self._scan(worker)
        try:
            names = cdn_results.purge_names(params.name, complete, partial)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        conflict = cdn_results.purge_conflict(self._running_jobs(worker))
        if conflict:
            raise Refused(conflict)
        freed = 0
        for name in names:
            for path, size in ((name, complete.get(name)), (name + values.PARTIAL_SUFFIX, partial.get(name))):
                if size is not None:
                    worker.remove_path(f"{CONTENT_DIR}/{path}")
                    freed += size
        return cdn_results.purge_results(names, freed)

    def _check_connectivity(self, params: ConnectivityParams) -> dict[str, Any]:
        try:
            return probe.check(params.target, params.count)
        except ValueError as exc:
            raise Refused(str(exc)) from None


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # one place for the tests to stand in for the job


if __name__ == "__main__":  # pragma: nocover
    ops.main(CdnCacheCharm)
