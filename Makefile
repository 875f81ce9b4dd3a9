# Each target creates .venv when missing; a second call reuses it.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-slow bench figures clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first, pinned: this build lies on disk; any other spec pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-disabled} $(PY) -m volume hydra.run.dir=outputs/default

test: $(STAMP)
	WANDB_MODE=disabled $(PY) -m pytest -q

test-slow: $(STAMP)
	WANDB_MODE=disabled $(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m benchmarks

figures: $(STAMP)
	$(PY) sweeps/reproduce_all.py

clean:
	rm -rf outputs multirun
