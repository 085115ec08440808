# Two commands set up a fresh machine (Python 3.11): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) scripts/demo.py

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow -n 2 --dist worksteal --durations=15

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf experiments results data/sample
