#!/usr/bin/env python3
"""`make integration`: the integration suite (tests/integration) on the Juju controller found.

    tools/integration.py [pytest options...]      e.g. --juju-controller microk8s --l2sm-model l2sm

Without a usable controller (no `juju` command, no controller, not a Kubernetes cloud) every test
skips for that one reason: this prints it in one line and exits 0. Any other outcome is what it
is: failures fail, and a run that collected nothing exits 5 (pytest's "no tests ran").
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "tests" / "integration"


def _helpers() -> Any:
    # By path: the suite's probe, without putting tests/ on sys.path for this process.
    spec = importlib.util.spec_from_file_location("l2sm_integration_helpers", SUITE / "helpers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Outcomes:
    """Each test's outcome and, for a skip, its reason."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, str]] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.skipped:
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.seen[report.nodeid] = ("skipped", reason.removeprefix("Skipped: "))
        elif report.failed:
            self.seen[report.nodeid] = ("failed", "")
        elif report.when == "call":
            self.seen.setdefault(report.nodeid, ("passed", ""))


def verdict(code: int, seen: dict[str, tuple[str, str]], missing: str) -> tuple[int, str]:
    """The exit code and the line to print for a pytest run's outcomes, given why the probe
    found no controller ('' when it found one)."""
    if code == pytest.ExitCode.NO_TESTS_COLLECTED or not seen:
        return int(pytest.ExitCode.NO_TESTS_COLLECTED), "integration: no test collected in tests/integration"
    reasons = {reason for outcome, reason in seen.values() if outcome == "skipped"}
    if missing and code == 0 and all(o == "skipped" for o, _ in seen.values()) and reasons == {missing}:
        return 0, f"integration: skipped ({len(seen)} tests): {missing}"
    return int(code), ""


def main(argv: list[str]) -> int:
    controller = next((a.split("=", 1)[1] for a in argv if a.startswith("--juju-controller=")), None)
    if "--juju-controller" in argv[:-1]:
        controller = argv[argv.index("--juju-controller") + 1]
    missing = _helpers().probe(controller).missing
    outcomes = Outcomes()
    quiet = ["-q", "-rN"] if missing else []
    code = pytest.main([str(SUITE), *quiet, *argv], plugins=[outcomes])
    status, line = verdict(int(code), outcomes.seen, missing)
    if line:
        print(line)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
