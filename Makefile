# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench serve clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m pixelrnn demo

test: $(STAMP)
	$(PY) -m pytest -q

serve: $(STAMP)
	$(PY) -m pixelrnn serve $(MODEL)

bench: $(STAMP)
	$(PY) bench/train_step.py

clean:
	rm -rf $(VENV) build src/*.egg-info
