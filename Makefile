# Two entry points: `make run` (the squares story, cpu profile) and `make test` (the whole suite).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
VARIANTS ?= S1 S2 S2c
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test venv clean

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) -m helpers.batch $(VARIANTS) --profile $(PROFILE)

test: venv
	$(PY) -m pytest --nbval-lax -q

clean:
	rm -rf $(VENV) results data/squares
