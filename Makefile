# Everything runs from a project virtualenv built from pinned requirements, so a fresh
# machine (and CI) needs only python3 and network access to PyPI.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD ?= build
CHARMS := $(patsubst %/charmcraft.yaml,%,$(wildcard charms/*/charmcraft.yaml charms/cdn-knfs/*/charmcraft.yaml))
COV_MIN ?= 90
# The workspace packages (core, controlplane, knf, charmlib, testing), each with its tests/.
PACKAGES := core controlplane knf charmlib testing lab

.PHONY: venv sysdeps lint fmt unit stage cross integration test demo clean osm-packages bench

venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt $(wildcard */pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps $(foreach p,$(PACKAGES),-e $(p))
	touch $@

# nginx, nft, Open vSwitch and ethtool, which tests and the lab run for real (pinned;
# installed only when missing and root).
sysdeps:
	tools/sysdeps.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/codespell
	$(VENV)/bin/pyright --pythonpath $(PY)
	@# The charms run on Juju 2.9's ubuntu@22.04 base: Python 3.10, whatever runs the tests.
	$(VENV)/bin/vermin -q -t=3.10- --violations --eval-annotations --backport typing_extensions \
	  --exclude-regex '(^|/)(\.venv|build)/' .

fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Core and each charm run in their own pytest process: every charm has a module named `charm`.
unit: venv
	$(PY) -m pytest core/tests controlplane/tests knf/tests charmlib/tests testing/tests \
	  --cov=l2sm_core --cov=l2sm_controlplane --cov=l2sm_knf --cov=l2sm_charmlib \
	  --cov-report=term-missing --cov-fail-under=$(COV_MIN)
	@# The lab: its own process (its end-to-end parts need root and skip saying so without).
	$(PY) -m pytest lab/tests
	@set -e; for c in $(CHARMS); do \
	  echo "== unit: $$c"; \
	  (cd $$c && PYTHONPATH=src $(CURDIR)/$(PY) -m pytest tests/unit \
	    --cov=src --cov-report=term-missing --cov-fail-under=$(COV_MIN)); \
	done

stage: venv
	$(PY) tools/stage.py --out $(BUILD) $(CHARMS)

# Suites that span charms (staged-charm import checks, bundles, later the lab).
cross: stage
	$(PY) -m pytest tests --build-dir $(BUILD)

# The integration suite on the Juju controller found (tests/integration, docs/decisions/0015):
# without `juju`, a controller or a Kubernetes cloud it prints the one reason and passes.
integration: stage
	$(PY) tools/integration.py --build-dir $(BUILD)

test: sysdeps lint unit cross integration

# The seed's proof of concept, replayed on this machine (root): networks, KNFs, ping, traceroute,
# a download cut and resumed, isolation. The report lands in $(BUILD)/demo-report.json.
demo: sysdeps venv
	@mkdir -p $(BUILD)
	$(VENV)/bin/l2sm-lab demo cdn --json $(BUILD)/demo-report.json

# The OSM packages (osm/, docs/decisions/0013): checked, then one tar.gz each with its md5
# checksums.txt as `osm package-build` makes them, in $(BUILD)/osm/. Charm files packed in
# $(BUILD)/<charm>/ (charmcraft pack, ubuntu@22.04) go into the KNF package; missing ones are listed.
osm-packages: venv
	$(PY) tools/osm_packages.py build osm --out $(BUILD)/osm --charms $(BUILD)

# Control-plane and data-plane figures, each beside a baseline measured in the same run
# (benchmarks/): results.json, results.md and PNG plots in $(BUILD)/bench; the data plane
# runs on the lab (root, Open vSwitch).
bench: venv sysdeps
	$(PY) -m benchmarks --out $(BUILD)/bench

clean:
	rm -rf $(BUILD) $(VENV) .coverage .pytest_cache
