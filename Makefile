# Each target creates .venv when missing; a second call reuses it.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# make figures: BUDGET=quick|default|night (docs/results.md); FIGURE_ARGS: launcher and overrides.
BUDGET ?= default
FIGURE_ARGS ?= --launcher joblib -- hydra.launcher.n_jobs=2 threads=1

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

# The published figures: docs/figures/{llamaizer,depth,depth_budget}.{png,csv}; raw runs in figures/NAME/BUDGET (git-ignored).
figures: $(STAMP)
	WANDB_MODE=$${WANDB_MODE:-disabled} $(PY) sweeps/reproduce_all.py --only llamaizer depth depth_budget --budget $(BUDGET) \
		--publish docs/figures $(FIGURE_ARGS)

clean:
	rm -rf outputs multirun
