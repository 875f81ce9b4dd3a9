"""Every config key: a bad value is refused before anything is written, by a ConfigError that
names the key (in-process: compose + the validation the CLI runs); a completeness check
that the table covers every key of every config group; a few real CLI calls for exit code 2."""
import random
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import make_cfg, run_cli
from volume.cli_guard import bad_call_message
from volume.errors import ConfigError
from volume.experiments import validate

RESMLP = ("experiment=depth",)  # a residual MLP on a task it fits (stream 6 >= 4 inputs)
RARE = ("experiment=rare_event",)
MODE = ("experiment=mode_connectivity",)
PATH = ("experiment=path_dependence",)
SGD = ("experiment=sgd_vs_prior", "experiment.n_nngp=0")
LLAMA = ("experiment=llamaizer",)
TRAINED = ("experiment=trained_classes",)
DIGITS = ("task=digits", "model.hidden=[4]")

# (key, overrides that reach it with one bad value): the error must start with "key:".
BAD = [
    ("n_samples", ("n_samples=0",)), ("n_samples", ("n_samples=abc",)), ("n_samples", ("n_samples=-5",)),
    ("batch_size", ("batch_size=0",)), ("batch_size", ("batch_size=1.5",)),
    ("seed", ("seed=-1",)), ("seed", ("seed=true",)),
    ("shard", ("shard=3",)), ("shard", ("shard=-1",)),
    ("num_shards", ("num_shards=0",)),
    ("threads", ("threads=0",)), ("threads", ("threads=two",)),
    ("device", ("device=tpu",)),
    ("resume", ("resume=maybe",)), ("resume", ("resume=1",)),
    ("progress", ("progress=maybe",)),
    ("checkpoint_seconds", ("checkpoint_seconds=-1",)), ("checkpoint_seconds", ("checkpoint_seconds=soon",)),
    ("checkpoint_seconds", ("checkpoint_seconds=inf",)),
    ("logger.name", ("logger.name=tensorboard",)),
    ("logger.mode", ("logger=wandb", "logger.mode=sometimes")),
    ("classifier.name", ("classifier.name=probe",)),
    ("experiment.name", ("experiment.name=nope",)),
    ("estimator.name", ("estimator.name=importance",)),
    ("model.name", ("model.name=cnn",)),
    ("model.hidden", ("model.hidden=[40,-2]",)), ("model.hidden", ("model.hidden=[40,0]",)),
    ("model.hidden", ("model.hidden=wide",)),
    ("model.activation", ("model.activation=gelu",)),
    ("model.bias", ("model.bias=maybe",)),
    ("model.n_out", ("model.n_out=0",)), ("model.n_out", ("model.n_out=abc",)),
    ("model.n_blocks", (*RESMLP, "model.n_blocks=0")),
    ("model.block_width", (*RESMLP, "model.block_width=0")),
    ("model.stream_width", (*RESMLP, "model.stream_width=3")),
    ("model.activation", (*RESMLP, "model.activation=gelu")),
    ("model.bias", (*RESMLP, "model.bias=maybe")),
    ("prior.name", ("prior.name=cauchy",)),
    ("prior.sigma_w", ("prior.sigma_w=0",)), ("prior.sigma_b", ("prior.sigma_b=-1",)),
    ("prior.fan_in_scaling", ("prior.fan_in_scaling=maybe",)),
    ("task.name", ("task.name=images",)),
    ("task.n", ("task.n=0",)), ("task.n", ("task.n=17",)),
    ("task.encoding", ("task.encoding=ternary",)),
    ("task.target", ("task.target=abc",)), ("task.target", ("task.target=xor3",)),
    ("task.target_vars", ("task.target=parity", "task.target_vars=[9]")),
    ("task.target_vars", ("task.target=parity", "task.target_vars=[1,1]")),
    ("task.preprocess", (*DIGITS, "task.preprocess=blur")),
    ("task.label_rule", (*DIGITS, "task.label_rule=odd")),
    ("task.encoding", (*DIGITS, "task.encoding=ternary")),
    ("trainer.optimizer", ("trainer.optimizer=lbfgs",)),
    ("trainer.loss", ("trainer.loss=hinge",)),
    ("trainer.lr", ("trainer.lr=0",)),
    ("trainer.momentum", ("trainer.momentum=1.5",)),
    ("trainer.beta1", ("trainer.beta1=-0.1",)),
    ("trainer.beta2", ("trainer.beta2=1",)),
    ("trainer.eps", ("trainer.eps=0",)),
    ("trainer.batch_size", ("trainer.batch_size=-1",)),
    ("trainer.max_steps", ("trainer.max_steps=0",)),
    ("trainer.pool", ("trainer.pool=0",)),
    ("estimator.n_particles", (*RARE, "estimator.n_particles=5")),
    ("estimator.n_runs", (*RARE, "estimator.n_runs=1")),
    ("estimator.keep", (*RARE, "estimator.keep=1.5")),
    ("estimator.n_moves", (*RARE, "estimator.n_moves=0")),
    ("estimator.moves", (*RARE, "estimator.moves=diagonal")),
    ("estimator.max_levels", (*RARE, "estimator.max_levels=0")),
    ("estimator.max_evals", (*RARE, "estimator.max_evals=0")),
    ("estimator", (*RARE, "estimator=basin")),
    ("experiment.margin", (*RARE, "experiment.margin=-1")),
    ("experiment.tau", (*RESMLP, "experiment.tau=1.5")),
    ("experiment.classes", (*RESMLP, "experiment.classes=[diagonal]")),
    ("experiment.deep", (*LLAMA, "experiment.deep=maybe")),
    ("experiment.shallow", (*LLAMA, "experiment.shallow=maybe")),
    ("experiment.controls", (*LLAMA, "experiment.controls=maybe")),
    ("experiment.n_classes_sampled", (*LLAMA, "experiment.n_classes_sampled=0")),
    ("experiment.only", (*LLAMA, "experiment.only=[deep_99]")),
    ("experiment.widths", (*MODE, "experiment.widths=[0]")),
    ("experiment.depth", (*MODE, "experiment.depth=0")),
    ("experiment.n_train", (*MODE, "experiment.n_train=0")),
    ("experiment.split_seed", (*MODE, "experiment.split_seed=-1")),
    ("experiment.n_pairs", (*MODE, "experiment.n_pairs=0")),
    ("experiment.n_points", (*MODE, "experiment.n_points=2")),
    ("experiment.tolerance", (*MODE, "experiment.tolerance=0")),
    ("experiment.max_passes", (*MODE, "experiment.max_passes=0")),
    ("experiment.n_boot", (*MODE, "experiment.n_boot=0")),
    ("experiment.n_inits", (*PATH, "experiment.n_inits=0")),
    ("experiment.runs_per_init", (*PATH, "experiment.runs_per_init=0")),
    ("experiment.n_prior", (*PATH, "experiment.n_prior=0")),
    ("experiment.n_prior", (*SGD, "experiment.n_prior=0")),
    ("experiment.n_nngp", ("experiment=sgd_vs_prior", "experiment.n_nngp=-1")),
    ("experiment.top_k", (*SGD, "experiment.top_k=[0]")),
    ("experiment.rare_event_top", (*SGD, "experiment.rare_event_top=-1")),
    ("experiment.rare_event_below", (*SGD, "experiment.rare_event_below=-1")),
    ("experiment.rare_event_options", (*SGD, "+experiment.rare_event_options.speed=1")),
    ("experiment.circuits", (*TRAINED, "experiment.circuits=probe")),
    ("experiment.basin_per_class", (*TRAINED, "experiment.basin_per_class=-1")),
    ("experiment.basin_directions", (*TRAINED, "experiment.basin_directions=1")),
    ("experiment.prior_run", (*TRAINED, "experiment.prior_run=/nonexistent/run")),
]

# Keys with no invalid value: free text passed to wandb, a trainer group's label (trainer.optimizer
# is what counts), or options of estimator=basin, which only the Python API runs (every
# experiment refuses estimator=basin, tested above).
FREE = {"logger.project", "logger.entity", "logger.group", "logger.run_name", "trainer.name",
        "estimator.n_directions", "estimator.n_grid", "estimator.n_bisect"}
# Compositions that together hold every key of every config group.
GROUPS = [(), ("model=resmlp",), ("task=digits",), ("prior=uniform",), ("logger=wandb",), ("trainer=sgd",),
          ("estimator=basin",), ("experiment=depth",), ("experiment=llamaizer",), ("experiment=mode_connectivity",),
          ("experiment=path_dependence",), ("experiment=rare_event",), ("experiment=sgd_vs_prior",),
          ("experiment=trained_classes",), ("experiment=trained_classes_depth",)]


def leaf_keys(node, prefix: str = "") -> set[str]:
    if not OmegaConf.is_dict(node):
        return {prefix}
    keys = {prefix} if prefix and len(node) == 0 else set()  # an empty dict (rare_event_options) is a key too
    for key in node:
        keys |= leaf_keys(node[key], f"{prefix}.{key}" if prefix else key)
    return keys


def test_table_covers_every_config_key():
    every = set().union(*(leaf_keys(make_cfg(*group)) for group in GROUPS))
    assert every - {key for key, _ in BAD} - FREE == set()


@pytest.mark.parametrize("key,overrides", BAD, ids=[" ".join(o) for _, o in BAD])
def test_bad_value_names_the_key_and_writes_nothing(tmp_path, key, overrides):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        validate(make_cfg("n_samples=1000", *overrides), run_dir)
    assert str(err.value).startswith(key + ":"), str(err.value)
    assert not run_dir.exists()


@pytest.mark.parametrize("group", GROUPS, ids=[" ".join(g) or "defaults" for g in GROUPS])
def test_shipped_configs_are_valid(tmp_path, group):
    """The table's negatives mean something only if the shipped defaults pass."""
    if "estimator=basin" in group:
        pytest.skip("estimator=basin is a Python API; every experiment refuses it (in BAD)")
    overrides = ("experiment.n_nngp=0",) if "experiment=sgd_vs_prior" in group else ()
    if group and group[0].startswith("experiment=trained_classes"):
        overrides = ("experiment.prior_run=null",)
    if "model=resmlp" in group:
        overrides = ("task.n=4",)
    validate(make_cfg(*group, *overrides), tmp_path / "run")


# --- fuzz: random override strings never end in a raw traceback -----------------------------

VALUES = ["", "-1", "0", "1", "2.5", "1e309", "nan", "-inf", "[]", "[1,2]", "[[1]]", "[-3]", "{}", "{a:1}", "null",
          "true", "abc", "'01'", "ffff", "0x1f", "${missing}", "${oc.env:VOLUME_NO_SUCH_VAR}", "é", "'a b'", "1,2"]
SHAPES = ["{key}={value}", "+{key}={value}", "~{key}", "{key}", "{key}=={value}", "={value}", "{key}=[{value}"]


def random_override(rng, keys: list[str]) -> str:
    """One override: a real key (or a group) with an awkward value, in a random syntax."""
    key = rng.choice(keys + ["model", "prior", "task", "logger", "experiment", "nonexistent_key"])
    return rng.choice(SHAPES).format(key=key, value=rng.choice(VALUES))


def fuzz_cases(n: int, seed: int = 17) -> list[list[str]]:
    rng = random.Random(seed)
    keys = sorted(set().union(*(leaf_keys(make_cfg(*group)) for group in GROUPS)))
    return [[random_override(rng, keys) for _ in range(rng.randint(1, 3))] for _ in range(n)]


def outcome(overrides: list[str], run_dir: Path) -> str:
    """What the CLI would do with these overrides, short of running: 'accepted', or 'rejected'
    with a one-line message (a composition error from hydra, or a ConfigError naming a key).
    Anything else propagates: it would be a traceback."""
    try:
        validate(make_cfg("n_samples=1000", *overrides), run_dir)
    except Exception as err:  # noqa: BLE001 - sorted exactly as the CLI sorts them
        if bad_call_message(err) is None:
            raise
        return "rejected"
    return "accepted"


def test_fuzz_overrides_fail_cleanly_in_process(tmp_path):
    outcomes = []
    for case, overrides in enumerate(fuzz_cases(150)):
        outcomes.append(outcome(overrides, tmp_path / str(case)))
        assert not (tmp_path / str(case)).exists(), overrides
    assert 0 < outcomes.count("accepted") < len(outcomes)  # the fuzz reaches both branches


def test_fuzz_cli_rejections_leave_nothing(tmp_path):
    """The real CLI on a few rejected random calls: exit 2, one line, no traceback, no directory."""
    rejected = [o for i, o in enumerate(fuzz_cases(40, seed=5)) if outcome(o, tmp_path / f"probe{i}") == "rejected"]
    for case, overrides in enumerate(rejected[:4]):
        out = tmp_path / f"run{case}"
        proc = run_cli(*overrides, f"hydra.run.dir={out}")
        assert proc.returncode == 2, (overrides, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: "), (overrides, proc.stderr)
        assert not out.exists(), overrides
