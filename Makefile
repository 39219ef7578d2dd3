# Two entry points: `make run` (squares and the TVPR stand-in, three seeds, cpu profile) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
VARIANTS ?= S1 S2 S2c R1
SEEDS ?= 0 1 2
TVPR_VARIANTS := R1 R2 R3 R4 R5 R6
TVPR_RAW ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run batch-tvpr test venv clean

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) -m helpers.batch $(VARIANTS) --seeds $(SEEDS) --profile $(PROFILE) $(if $(TVPR_RAW),--tvpr-raw $(TVPR_RAW))

# All six TVPR variants of Table 4.2 (on the offline stand-in unless TVPR_RAW=/path/to/TVPR).
batch-tvpr: venv
	$(PY) -m helpers.batch $(TVPR_VARIANTS) --seeds $(SEEDS) --profile $(PROFILE) $(if $(TVPR_RAW),--tvpr-raw $(TVPR_RAW))

test: venv
	$(PY) -m pytest --nbval-lax -q

clean:
	rm -rf $(VENV) results data/squares data/tvpr data/topview_raw
