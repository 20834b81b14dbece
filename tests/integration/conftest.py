"""The integration suite's fixtures: the controller found (or one line saying what is missing),
the Juju dialect it speaks, the packed charms, and the models, named and kept or torn down as
pytest-jubilant's options say (--juju-model, --juju-controller, --no-juju-setup,
--no-juju-teardown, --juju-dump-logs; its juju_setup/juju_teardown markers).

These tests are collected only when tests/integration is named on the command line (`make
integration`, tools/integration.py): `pytest tests` (make cross) leaves them alone, so a machine
with a controller does not run the cluster suite twice.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import jubilant
import jubilant_backports
import pytest
import yaml

from . import helpers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORE_CHARMS = ("l2sm-controller", "l2sm-switch")
# Every charm the suite deploys (tools/setup-microk8s.sh packs the same; a test holds them equal).
SUITE_CHARMS = (*CORE_CHARMS, "l2sm-network", "cdn-content-server", "cdn-router", "cdn-cache")


def _named(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name.startswith("test_") and not _named(config):
        return True
    return None


# Module order: the CDN service and the OSM run share the cluster's L2Network names (cluster-wide
# in L2S-M), so each removes its applications before the next; the core goes last.
ORDER = ("test_cdn.py", "test_osm.py", "test_core_removal.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return ORDER.index(name) if item.path.parent == HERE and name in ORDER else len(ORDER)

    items.sort(key=rank)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("l2sm integration")
    group.addoption(
        "--l2sm-model",
        default="",
        help="use the L2S-M core already deployed in this model (e.g. `l2sm`, tools/setup-microk8s.sh) "
        "instead of deploying bundles/l2sm.yaml into a temporary model: the core is a cluster singleton",
    )
    group.addoption("--kubectl", default="", help="kubectl command (default: kubectl, else microk8s kubectl)")


@pytest.fixture(scope="session")
def environment(request: pytest.FixtureRequest) -> helpers.Environment:
    env = helpers.probe(request.config.getoption("--juju-controller"))
    if env.missing:
        pytest.skip(env.missing)
    return env


@pytest.fixture(autouse=True)
def _needs_a_controller(environment: helpers.Environment) -> None:
    """Every test here needs the controller: one skip, one reason, for all of them."""


@pytest.fixture(scope="session")
def dialect(environment: helpers.Environment) -> ModuleType:
    return jubilant_backports if environment.dialect == "backports" else jubilant


@pytest.fixture(scope="session")
def packed(build_dir: Path) -> Path:
    """The build dir with every charm packed (ubuntu@22.04): packs what is missing when
    charmcraft is here (in make stage's build/<charm>/), else fails naming the files."""
    charms = SUITE_CHARMS
    missing = [c for c in charms if not helpers.charm_file(build_dir, c).is_file()]
    if missing and shutil.which("charmcraft"):
        for charm in missing:
            subprocess.run(
                ["charmcraft", "pack", "--platform", f"{helpers.CHARM_BASE}:amd64"],
                cwd=build_dir / charm,
                check=True,
            )
        missing = [c for c in charms if not helpers.charm_file(build_dir, c).is_file()]
    if missing:
        files = ", ".join(str(helpers.charm_file(build_dir, c)) for c in missing)
        pytest.fail(f"no packed charm {files}: run `make stage`, then `charmcraft pack` in build/<charm>/")
    return build_dir


@dataclass
class Models:
    """The models this session made (destroyed at its end unless --no-juju-teardown)."""

    dialect: ModuleType
    prefix: str
    controller: str | None
    create: bool
    existing_ok: bool
    made: list[Any] = field(default_factory=list)

    def qualified(self, name: str) -> str:
        return f"{self.controller}:{name}" if self.controller else name

    def existing(self, name: str) -> Any:
        """A model this session neither makes nor removes, on this session's controller."""
        return self.dialect.Juju(model=self.qualified(name), wait_timeout=30 * 60)

    def get(self, name: str) -> Any:
        model = self.qualified(name)
        juju = self.dialect.Juju(model=model, wait_timeout=30 * 60)
        if self.create:
            try:
                juju.add_model(name, controller=self.controller)
                self.made.append(juju)
            except self.dialect.CLIError as exc:
                if not (self.existing_ok and "already exists" in (exc.stderr or "")):
                    raise
            juju.model = model
        return juju

    def teardown(self, logs: str | None, destroy: bool) -> list[str]:
        """Dump each model's log into `logs` (given) and destroy it (`destroy`), the last made
        first: the core's model, made first, offers l2sm-controller to the others. Every model
        is tried; what failed is returned."""
        failures = []
        for juju in reversed(self.made):
            try:
                if logs:
                    Path(logs).mkdir(parents=True, exist_ok=True)
                    name = f"{str(juju.model).replace(':', '-')}-juju-debug.log"
                    (Path(logs) / name).write_text(juju.debug_log())
                if destroy:
                    juju.destroy_model(juju.model, destroy_storage=True, force=True)
            except self.dialect.CLIError as exc:
                failures.append(f"{juju.model}: {exc.stderr or exc}")
        return failures


@pytest.fixture(scope="session")
def models(
    request: pytest.FixtureRequest, dialect: ModuleType, environment: helpers.Environment
) -> Iterator[Models]:
    option = request.config.getoption
    given = option("--juju-model")
    made = Models(
        dialect=dialect,
        prefix=given or f"l2sm-it-{secrets.token_hex(3)}",
        # The controller probed (the current one unless named): every model is qualified with
        # it, so a `juju switch` elsewhere during the run changes nothing.
        controller=option("--juju-controller") or environment.controller or None,
        create=not option("--no-juju-setup"),
        existing_ok=bool(given),
    )
    yield made
    failures = made.teardown(option("--juju-dump-logs"), destroy=not option("--no-juju-teardown"))
    if failures:
        pytest.fail(f"tearing the models down failed: {'; '.join(failures)}")


@dataclass(frozen=True)
class Core:
    juju: Any
    deployed: bool  # by this session (then removed by it too)
    offer_url: str


def _user(environment: helpers.Environment) -> str:
    # The account on the controller probed, not `juju whoami`'s (the current controller's).
    if not environment.user:
        pytest.fail(f"`juju show-controller {environment.controller}` names no account user: no offer URL")
    return environment.user


@pytest.fixture(scope="session")
def core(
    request: pytest.FixtureRequest,
    models: Models,
    environment: helpers.Environment,
    packed: Path,
    tmp_path_factory,
) -> Core:
    """The L2S-M core: the one named by --l2sm-model (on the session's controller), or
    bundles/l2sm.yaml deployed with the packed charms into `<prefix>-l2sm`."""
    existing = request.config.getoption("--l2sm-model")
    if existing:
        return Core(models.existing(existing), False, f"{_user(environment)}/{existing}.l2sm-controller")
    juju = models.get(f"{models.prefix}-l2sm")
    if models.create:
        bundle = _bundle(ROOT / "bundles" / "l2sm.yaml", packed, tmp_path_factory.mktemp("core"))
        juju.deploy(bundle, trust=True)
    juju.wait(helpers.settled(CORE_CHARMS), error=helpers.errored(CORE_CHARMS), delay=5)
    name = str(juju.model).split(":")[-1]
    return Core(juju, True, f"{_user(environment)}/{name}.l2sm-controller")


def _bundle(source: Path, charms: Path, out: Path, offer_url: str | None = None) -> Path:
    """`source` with the packed charms and their images (its local-charms overlay) and, given,
    the core's offer URL: written to `out`, ready for `juju deploy`."""
    bundle = yaml.safe_load(source.read_text())
    overlay_file = ROOT / "bundles" / "overlays" / f"{source.stem}-local-charms.yaml"
    if overlay_file.is_file():
        for app, spec in (yaml.safe_load(overlay_file.read_text())["applications"] or {}).items():
            bundle["applications"][app].update(spec)
    bundle = helpers.local_charms(bundle, charms)
    if offer_url:
        bundle = helpers.with_offer(bundle, "l2sm-controller", offer_url)
    path = out / source.name
    path.write_text(yaml.safe_dump(bundle, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def bundle_file():
    return _bundle


@pytest.fixture(scope="session")
def osm_nsr_id(models: Models) -> str:
    """The NS record id of the OSM-shaped run: a uuid, the same for a given --juju-model so a
    rerun with --no-juju-setup finds the model again."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"l2sm-integration:{models.prefix}"))


@pytest.fixture(scope="session")
def kubectl(request: pytest.FixtureRequest) -> list[str]:
    given = request.config.getoption("--kubectl")
    if given:
        return given.split()
    if shutil.which("kubectl"):
        return ["kubectl"]
    if shutil.which("microk8s"):
        return ["microk8s", "kubectl"]
    pytest.skip("no kubectl (nor microk8s kubectl): pass --kubectl to check what is left in Kubernetes")
