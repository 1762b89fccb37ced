# Two commands do all set-up: `make test` and `make demo` (each creates .venv if missing).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench install clean docs

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# the whole user path on CPU: data (two levels) -> train an FNO from YAML -> evaluate on held-out files
DEMO := runs/demo
DEMO_N ?= 240
DEMO_TEST_N ?= 32
DEMO_EPOCHS ?= 25
demo: $(STAMP)
	mkdir -p $(DEMO)/data
	$(VENV)/bin/datagen poisson --level easy --n $(DEMO_N) --resolution 32 --seed 0 --out $(DEMO)/data/easy.h5 --overwrite
	$(VENV)/bin/datagen poisson --level medium --n $(DEMO_N) --resolution 32 --seed 0 --out $(DEMO)/data/medium.h5 --overwrite
	$(VENV)/bin/datagen poisson --level easy --n $(DEMO_TEST_N) --resolution 32 --seed 100000 --out $(DEMO)/data/easy_test.h5 --overwrite --quiet
	$(VENV)/bin/datagen poisson --level medium --n $(DEMO_TEST_N) --resolution 32 --seed 100000 --out $(DEMO)/data/medium_test.h5 --overwrite --quiet
	rm -rf $(DEMO)/checkpoints $(DEMO)/logs
	$(VENV)/bin/pdekit fit --config experiments/configs/demo_poisson_fno.yaml --trainer.max_epochs $(DEMO_EPOCHS)
	$(VENV)/bin/pdekit evaluate --ckpt $(DEMO)/checkpoints/last.ckpt --data $(DEMO)/data/easy_test.h5 $(DEMO)/data/medium_test.h5 --out $(DEMO)/evaluation
	@echo "demo done: metrics $(DEMO)/evaluation/metrics.json, figures $(DEMO)/evaluation/*.png, training log $(DEMO)/logs"

# the manual and API reference: docs/_build/html/index.html (warnings are errors)
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) -m experiments.benchmarks.bench_krylov --out experiments/results/bench_krylov.json
	$(PY) -m experiments.benchmarks.bench_datagen --out experiments/results/bench_datagen.json
	$(PY) -m experiments.benchmarks.bench_navier_stokes --out experiments/results/bench_navier_stokes.json

clean:
	rm -rf $(VENV) .pytest_cache experiments/results docs/_build docs/api/generated
