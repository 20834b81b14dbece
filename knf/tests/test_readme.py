"""knf/README.md kept true: its charm example and its test example run as a charm and its
suite, its pins are the test KNF charm's, and the module docstring shows the same example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

import l2sm_knf
from l2sm_knf import l2sm_network

KNF = Path(__file__).resolve().parent.parent
README = (KNF / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README, re.MULTILINE | re.DOTALL)


def test_the_examples_run_as_a_charm_and_its_tests(tmp_path):
    charm_py, test_py = _blocks("python")
    (snippet,) = _blocks("yaml")
    meta = {"name": "my-knf", "type": "charm", "summary": "x", "description": "x"} | yaml.safe_load(snippet)
    (tmp_path / "charmcraft.yaml").write_text(yaml.safe_dump(meta))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "charm.py").write_text(charm_py)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_charm.py").write_text(
        test_py
        + textwrap.dedent(
            '''

            def test_the_example_says_where_it_is(caplog):
                """The example's handler ran: it logs each network's address and interface."""
                import logging

                caplog.set_level(logging.INFO, logger="charm")
                test_joining_net_a()
                assert "net-a: 10.0.1.10/24 on net1" in caplog.messages
            '''
        )
    )
    # Its own process: every charm's module is named `charm`, the test KNF charm's too.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST", "COV_"))}
    result = subprocess.run(
        [sys.executable, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env=env | {"PYTHONPATH": "src"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout


def test_the_module_docstring_shows_the_readme_s_charm():
    charm_py = _blocks("python")[0]
    assert textwrap.indent(charm_py, "    ") in (l2sm_network.__doc__ or "")


def test_the_readme_s_pins_are_the_test_charm_s():
    (requirements,) = [b for b in _blocks("") if "l2sm-knf @" in b]
    pins = [line for line in requirements.splitlines() if "==" in line]
    charm = (KNF / "tests" / "knf_charm" / "requirements.txt").read_text().splitlines()
    assert pins == [line for line in charm if line and not line.startswith("#")]
    assert "#subdirectory=core" in requirements and "#subdirectory=knf" in requirements


def test_the_version_is_the_pyproject_s():
    pyproject = (KNF / "pyproject.toml").read_text()
    assert f'version = "{l2sm_knf.__version__}"' in pyproject
    core = (KNF.parent / "core" / "pyproject.toml").read_text()
    # Released together: l2sm-knf requires the l2sm-core of its own version.
    assert f'version = "{l2sm_knf.__version__}"' in core
    assert f'"l2sm-core[netlink]=={l2sm_knf.__version__}"' in pyproject
