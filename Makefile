# Two entry points: `make run` (the quick full story on one seed) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?=
TVPR_RAW ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run full test venv clean

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

# Squares and the TVPR stand-in: the thesis's S1 and R1 beside our robust variants (config.QUICK_VARIANTS),
# training seed 0, then notebooks 05, 06 and 07. The quick profile: the cpu profile's images and networks
# on shorter schedules (helpers/config.py); `make run PROFILE=cpu` runs the same story at cpu.
run: venv
	$(PY) -m helpers.batch --profile $(or $(PROFILE),quick) $(if $(TVPR_RAW),--tvpr-raw $(TVPR_RAW))

# Every variant (config.FULL_VARIANTS: S1, S2, S2c, ... R1-R6, ...) with training seeds 0, 1 and 2, at cpu,
# in a tree of its own (full/data, full/results) so that it never meets make run's quick runs.
full: export ANON_ROOT := $(abspath $(or $(ANON_ROOT),full))
full: venv
	$(PY) -m helpers.batch $$($(PY) -c "from helpers import config; print(*config.FULL_VARIANTS)") \
		--seeds 0 1 2 --attack-outputs uint8 float --profile $(or $(PROFILE),cpu) $(if $(TVPR_RAW),--tvpr-raw $(TVPR_RAW))

test: venv
	$(PY) -m pytest --nbval-lax -q -n 2

clean:
	rm -rf $(VENV) full results data/squares data/tvpr data/topview_raw
