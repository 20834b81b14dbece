#!/usr/bin/env python3
"""The CDN's origin: serves the files of its content storage with nginx (byte ranges on, an
optional per-connection rate limit), next to manifest.json, and tells the caches integrated on
`origin` where: `http://<address>:<port>/` for each of the unit's L2S-M network addresses.

Two workload containers share the `content` storage: `nginx` serves it, `jobs` (a python
image) runs l2sm_core.cdn.jobs: the one-shot `generate` and `fetch` services the actions start
under Pebble, and `manifest`, which the charm runs whenever the directory's listing (names and
sizes) no longer matches manifest.json: after a job ends, a file is removed, or on
update-status for a job an action did not wait for.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shlex
import time
from typing import Any

import ops
from models import AddParams, ConnectivityParams, GenerateParams, ListParams, RemoveParams, ServerConfig

from l2sm_charmlib import workload
from l2sm_charmlib.hints import integrate_command
from l2sm_charmlib.reconcile import Blocked, ReconcilingCharm, Refused, Waiting
from l2sm_core import probe
from l2sm_core.cdn import content, jobs, render, values
from l2sm_core.cdn import results as cdn_results
from l2sm_core.cdn.origin import OriginProviderAppData
from l2sm_core.validation import clip
from l2sm_knf import L2smNetworks
from l2sm_knf.databag import canonical_json
from l2sm_knf.kube import KubeForbidden, KubeNotFound

logger = logging.getLogger(__name__)

ORIGIN = "origin"
NGINX = "nginx"
JOBS = "jobs"
LAYER = "cdn-content-server"

CONTENT_DIR = "/srv/content"  # the `content` storage, in both workload containers
MANIFEST = values.MANIFEST_NAME
MANIFEST_PATH = f"{CONTENT_DIR}/{MANIFEST}"
NGINX_CONF = "/etc/nginx/cdn-content-server.conf"
RUNTIME_DIR = "/run/cdn-content-server"
STATUS_DIR = "/var/lib/cdn-content-server"  # job status files, in the jobs container (not served)
GENERATE = "generate"
FETCH = "fetch"
CONTENT_JOBS = (GENERATE, FETCH)
RETRIES = 5  # a cut download resumes this many times within one job
POLL = 0.5  # seconds between reads of a job's status file while an action waits
# manifest hashes every file again (the CLI keeps no digests between runs): bounded, so a
# hook never hangs on a huge directory; it is tried again on the next hook.
MANIFEST_TIMEOUT = 120


def status_file(job: str) -> str:
    return workload.status_path(STATUS_DIR, job)


class CdnContentServerCharm(ReconcilingCharm):
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(addresses="[]")
        self.networks = L2smNetworks(
            self, "networks", addresses=lambda: str(self.config.get("addresses", ""))
        )
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
            self.on[ORIGIN].relation_created,
            self.on[ORIGIN].relation_joined,
        ):
            framework.observe(event, self._reconcile)
        for event in (self.networks.on.ready, self.networks.on.changed, self.networks.on.lost):
            framework.observe(event, self._on_network)
        framework.observe(self.on.generate_content_action, self._on_generate)
        framework.observe(self.on.add_content_action, self._on_add)
        framework.observe(self.on.list_content_action, self._on_list)
        framework.observe(self.on.remove_content_action, self._on_remove)
        framework.observe(self.on.check_connectivity_action, self._on_check_connectivity)

    # -- inputs -------------------------------------------------------------------------------

    def _config(self) -> ServerConfig:
        return self.typed_config(ServerConfig)

    def _addresses(self) -> list[str]:
        return json.loads(self._stored.addresses)

    def _urls(self, config: ServerConfig) -> list[str]:
        return [f"http://{address}:{config.port}/" for address in self._addresses()]

    # -- reconcile ----------------------------------------------------------------------------

    def _on_network(self, event: ops.EventBase) -> None:
        # Memberships are read only in dispatches the KNF library reconciles: keep this unit's
        # addresses for the others (pebble-ready, an origin relation joining).
        addresses = [
            str(ipaddress.IPv4Interface(m.address).ip) for m in self.networks.memberships if m.address
        ]
        self._stored.addresses = json.dumps(addresses)
        self._reconcile(event)

    def _reconcile(self, event: ops.EventBase) -> None:
        try:
            config = self._config()
            self._configure_nginx(config)
            self._publish(config)
            self._refresh_manifest(self._jobs_container())
        except (Blocked, Waiting, KubeNotFound, KubeForbidden) as exc:
            self.record_stop(exc)

    def _site(self, config: ServerConfig) -> render.ContentServerSite:
        return render.ContentServerSite(
            port=config.port,
            content_dir=CONTENT_DIR,
            runtime_dir=RUNTIME_DIR,
            limit_rate=config.rate_limit,
            manifest=MANIFEST,
            autoindex=config.autoindex,
        )

    def _configure_nginx(self, config: ServerConfig) -> None:
        nginx = self.unit.get_container(NGINX)
        if not nginx.can_connect():
            raise Waiting("waiting for the nginx container")
        site = self._site(config)
        changed = workload.push_if_changed(nginx, NGINX_CONF, render.render_content_server(site), 0o644)
        nginx.make_dir(RUNTIME_DIR, make_parents=True)
        layer = self._nginx_layer(site)
        running = _running(nginx, NGINX)
        if changed and running:
            # A new config: nginx re-reads it without dropping downloads in flight.
            workload.test_or_forget(
                nginx, render.nginx_test_command(NGINX_CONF), "nginx refuses the config", NGINX_CONF
            )
            workload.run_or_blocked(nginx, render.nginx_reload_command(NGINX_CONF), "nginx did not reload")
        if workload.plan_differs(nginx, layer):
            nginx.add_layer(LAYER, layer, combine=True)
            nginx.replan()
        elif not running:
            nginx.start(NGINX)

    def _nginx_layer(self, site: render.ContentServerSite) -> ops.pebble.Layer:
        layer: ops.pebble.LayerDict = {
            "summary": "cdn-content-server nginx",
            "services": {
                NGINX: {
                    "override": "replace",
                    "summary": "serves the content storage and its manifest",
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
                    "http": {"url": f"http://localhost:{site.port}{render.HEALTHZ}"},
                }
            },
        }
        return ops.pebble.Layer(layer)

    def _publish(self, config: ServerConfig) -> None:
        """The leader's URLs on every origin relation; none until the unit has an address (a
        cache could not reach the pod's cluster address over L2S-M)."""
        if not self.unit.is_leader():
            return
        urls = self._urls(config)
        for relation in self.model.relations[ORIGIN]:
            if urls:
                data = OriginProviderAppData(urls=urls, manifest=MANIFEST)
                relation.save(data, self.app, encoder=canonical_json)
            else:
                relation.data[self.app].clear()  # the addresses are gone: stale URLs mislead

    def _jobs_container(self) -> ops.Container:
        worker = self.unit.get_container(JOBS)
        if not worker.can_connect():
            raise Waiting("waiting for the jobs container")
        for rel, local in jobs.job_files().items():
            workload.push_if_changed(worker, f"{jobs.JOB_ROOT}/{rel}", local.read_text(), 0o644)
        worker.make_dir(STATUS_DIR, make_parents=True)
        return worker

    # -- the manifest -------------------------------------------------------------------------

    def _listing(self, worker: ops.Container) -> dict[str, int]:
        """The files the manifest should list (the rules of content.scan): name -> bytes."""
        try:
            entries = worker.list_files(CONTENT_DIR)
        except ops.pebble.APIError:
            return {}
        # A name the manifest job leaves out is left out here too (the job's log says why).
        return {
            e.name: e.size or 0
            for e in entries
            if e.type == ops.pebble.FileType.FILE and cdn_results.listed(e.name)
        }

    def _partials(self, worker: ops.Container) -> set[str]:
        try:
            entries = worker.list_files(CONTENT_DIR, pattern=f"*{values.PARTIAL_SUFFIX}")
        except ops.pebble.APIError:
            return set()
        return {e.name.removesuffix(values.PARTIAL_SUFFIX) for e in entries}

    def _read_manifest(self, worker: ops.Container) -> content.Manifest | None:
        try:
            return content.parse_manifest(worker.pull(MANIFEST_PATH).read())
        except (ops.pebble.PathError, ops.pebble.ProtocolError, ValueError):
            return None

    def _current_manifest(self, worker: ops.Container) -> content.Manifest | None:
        """manifest.json, if it lists what the directory holds (by name and size)."""
        manifest = self._read_manifest(worker)
        if manifest is None or {e.name: e.size for e in manifest.entries} != self._listing(worker):
            return None
        return manifest

    def _refresh_manifest(self, worker: ops.Container) -> content.Manifest:
        manifest = self._current_manifest(worker)
        if manifest is not None:
            return manifest
        argv = shlex.split(jobs.job_command("manifest", dir=CONTENT_DIR))
        try:
            _write_manifest(worker, argv)
        except ops.pebble.ExecError as exc:
            raise Blocked(clip(f"the manifest job failed: {str(exc.stderr or '').strip()}", 300)) from None
        except (ops.pebble.TimeoutError, ops.pebble.ChangeError, ops.pebble.APIError) as exc:
            raise Blocked(
                clip(f"the manifest job did not finish: {exc} (tried again on the next hook)", 300)
            ) from None
        manifest = self._read_manifest(worker)
        if manifest is None:
            raise Blocked(f"the manifest job wrote no readable {MANIFEST_PATH}: see `juju debug-log`")
        return manifest

    # -- status -------------------------------------------------------------------------------

    def assess(self) -> ops.StatusBase:
        config = self._config()
        network = self.networks.status()
        if isinstance(network, ops.BlockedStatus):
            raise Blocked(network.message)
        if isinstance(network, (ops.WaitingStatus, ops.MaintenanceStatus)):
            return network
        nginx = self.unit.get_container(NGINX)
        if not nginx.can_connect():
            raise Waiting("waiting for the nginx container")
        for check in nginx.get_checks("nginx-up").values():
            if check.status == ops.pebble.CheckStatus.DOWN:
                raise Blocked(
                    "nginx fails its health check: see `juju debug-log` (Pebble logs nginx's errors)"
                )
        worker = self.unit.get_container(JOBS)
        if not worker.can_connect():
            raise Waiting("waiting for the jobs container")
        manifest = self._current_manifest(worker)
        if manifest is None:
            files = "manifest refreshed on the next hook"
        else:
            files = f"{len(manifest.entries)} files, {manifest.total_bytes} bytes"
        served = f"HTTP :{config.port}, {files}"
        urls = self._urls(config)
        if not urls:
            hint = integrate_command(self, f"{self.app.name}:networks", "<l2sm-network>")
            raise Blocked(
                f"{served}; no L2S-M network address to publish on '{ORIGIN}': join a network ({hint})"
            )
        parts = [f"{served} at {' '.join(urls)}"]
        if config.rate_limit:
            parts.append(f"rate-limit {values.render_rate(config.rate_limit)}")
        for job in CONTENT_JOBS:
            status = self._job_status(worker, job)
            if status and status.get("state") == "running" and _running(worker, job):
                done, total = (
                    workload.result_text(status.get("bytes")),
                    workload.result_text(status.get("total")),
                )
                parts.append(f"{job} {status.get('name')}: {done}/{total} bytes")
        parts.append(network.message)
        return ops.ActiveStatus(clip("; ".join(parts), 400))

    def _jobs(self, worker: ops.Container) -> workload.Jobs:
        # _sleep looked up at call time: the tests stand in for the job's progress there.
        return workload.Jobs(worker, STATUS_DIR, self.app.name, poll=POLL, sleep=lambda s: _sleep(s))

    def _job_status(self, worker: ops.Container, job: str) -> dict[str, Any] | None:
        return self._jobs(worker).status(job)

    # -- actions ------------------------------------------------------------------------------

    def _on_generate(self, event: ops.ActionEvent) -> None:
        self.run_action(event, GenerateParams, self._generate, leader_only=False)

    def _on_add(self, event: ops.ActionEvent) -> None:
        self.run_action(event, AddParams, self._add, leader_only=False)

    def _on_list(self, event: ops.ActionEvent) -> None:
        self.run_action(event, ListParams, self._list, leader_only=False)

    def _on_remove(self, event: ops.ActionEvent) -> None:
        self.run_action(event, RemoveParams, self._remove, leader_only=False)

    def _on_check_connectivity(self, event: ops.ActionEvent) -> None:
        self.run_action(event, ConnectivityParams, self._check_connectivity, leader_only=False)

    def _worker(self) -> ops.Container:
        try:
            return self._jobs_container()
        except Waiting:
            raise Refused("the jobs container is not up yet: try again in a moment") from None

    def _writing(self, worker: ops.Container) -> dict[str, str]:
        """The content jobs running now: job -> the name it writes."""
        writing = {}
        for job in CONTENT_JOBS:
            if _running(worker, job):
                writing[job] = str((self._job_status(worker, job) or {}).get("name", ""))
        return writing

    def _check_new(self, worker: ops.Container, job: str, name: str) -> None:
        # Refused before anything starts: a job replaces its file, and caches verify the old one.
        conflict = cdn_results.new_content_conflict(job, name, self._listing(worker), self._writing(worker))
        if conflict:
            raise Refused(conflict)

    def _generate(self, params: GenerateParams) -> dict[str, Any]:
        worker = self._worker()
        self._check_new(worker, GENERATE, params.name)
        command = jobs.job_command(
            "generate", dest=CONTENT_DIR, name=params.name, size=params.size, status=status_file(GENERATE)
        )
        status = self._jobs(worker).start(GENERATE, command, params.wait)
        return self._job_results(worker, GENERATE, params.name, status)

    def _add(self, params: AddParams) -> dict[str, Any]:
        name = params.name
        if name is None:
            try:
                name = cdn_results.url_content_name(params.url)
            except ValueError as exc:
                raise Refused(f"parameter 'url': its file name {exc}; or give parameter 'name'") from None
        worker = self._worker()
        self._check_new(worker, FETCH, name)
        command = jobs.job_command(
            "fetch", url=params.url, dest=CONTENT_DIR, name=name, retries=RETRIES, status=status_file(FETCH)
        )
        status = self._jobs(worker).start(FETCH, command, params.wait)
        results = self._job_results(worker, FETCH, name, status)
        results["url"] = params.url
        return results

    def _job_results(
        self, worker: ops.Container, job: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            results = cdn_results.content_job_results(job, name, status)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        listed = None
        if results["state"] == "done":
            listed = {e.name for e in self._refresh_manifest_for_action(worker).entries}
        results["manifest"] = cdn_results.manifest_word(name, results["state"], listed)
        return results

    def _refresh_manifest_for_action(self, worker: ops.Container) -> content.Manifest:
        try:
            return self._refresh_manifest(worker)
        except Blocked as exc:
            raise Refused(str(exc)) from None

    def _list(self, _: ListParams) -> dict[str, Any]:
        manifest = self._refresh_manifest_for_action(self._worker())
        # Action result keys cannot hold file names (dots): one "name bytes sha256" line per file.
        return cdn_results.server_listing((e.name, e.size, e.sha256) for e in manifest.entries)

    def _remove(self, params: RemoveParams) -> dict[str, Any]:
        worker = self._worker()
        listing = self._listing(worker)
        partial = params.name in self._partials(worker)
        refusal = cdn_results.remove_content_refusal(params.name, listing, partial, self._writing(worker))
        if refusal:
            raise Refused(refusal)
        freed = listing.get(params.name, 0)
        if params.name in listing:
            worker.remove_path(f"{CONTENT_DIR}/{params.name}")
        if partial:
            worker.remove_path(f"{CONTENT_DIR}/{params.name}{values.PARTIAL_SUFFIX}")
        manifest = self._refresh_manifest_for_action(worker)
        return cdn_results.remove_content_results(params.name, freed, len(manifest.entries))

    def _check_connectivity(self, params: ConnectivityParams) -> dict[str, Any]:
        try:
            return probe.check(params.target, params.count)
        except ValueError as exc:
            raise Refused(str(exc)) from None


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # one place for the tests to stand in for the job


def _write_manifest(container: ops.Container, argv: list[str]) -> None:
    # One place for the tests to stand in for the job (ops.testing's Exec writes no files).
    container.exec(argv, timeout=MANIFEST_TIMEOUT).wait_output()


def _running(container: ops.Container, service: str) -> bool:
    services = container.get_services(service)
    return service in services and services[service].is_running()


if __name__ == "__main__":  # pragma: nocover
    ops.main(CdnContentServerCharm)
