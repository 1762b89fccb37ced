# Two commands do all set-up: `make test` and `make demo` (each creates .venv if missing).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) experiments/bench_krylov.py --small --out experiments/results/bench_krylov_small.json

bench: $(STAMP)
	$(PY) experiments/bench_krylov.py --out experiments/results/bench_krylov.json
	$(PY) experiments/bench_datagen.py --out experiments/results/bench_datagen.json

clean:
	rm -rf $(VENV) .pytest_cache experiments/results
