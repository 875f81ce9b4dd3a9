"""The NNGP (volume/nngp.py) against exact ground truth, and its place in sgd_vs_prior."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate
from scipy.stats import chi2_contingency, norm

from conftest import interrupt_on_call
from conftest import run_in_process as _run
from volume.errors import ConfigError
from volume.functions import unique_counts, unpack_bits
from volume.nets import ACTIVATIONS, MLP
from volume.nngp import gaussian_product_moment, gp_factor, gp_keys, nngp_kernel, ordered_factor
from volume.population import CHUNK, batch_keys, n_chunks
from volume.priors import Prior
from volume.rng import counter_sample, normal_rows
from volume.tasks import boolean_task

CUBE3 = boolean_task(3, "01", "or")  # 8 inputs, x = 0 among them


def _gp_sample(kernel: torch.Tensor, n: int, seed: int, labels=None, first=np.zeros(0, np.int64)) -> np.ndarray:
    factor, order, _ = ordered_factor(kernel, first)
    return gp_keys(factor, order, seed, range(n_chunks(n)), n, labels)


def _prior_keys(arch, prior, task, n: int, seed: int) -> np.ndarray:
    return batch_keys(arch, prior, task, seed, range(n_chunks(n)), n)


def _same_distribution(a: np.ndarray, b: np.ndarray) -> float:
    """p-value of a chi-square test that two samples of keys come from one distribution
    (functions seen fewer than 10 times in both pooled into one cell)."""
    union, _ = unique_counts(np.concatenate([a, b]))
    table = np.zeros((2, len(union)), np.int64)
    index = {k.tobytes(): i for i, k in enumerate(union)}
    for row, keys in enumerate((a, b)):
        uniq, counts = unique_counts(keys)
        table[row, [index[k.tobytes()] for k in uniq]] = counts
    rare = table.sum(0) < 10
    table = np.concatenate([table[:, ~rare], table[:, rare].sum(1, keepdims=True)], 1)
    return chi2_contingency(table[:, table.sum(0) > 0])[1]


@pytest.mark.parametrize("prior", [Prior(sigma_w=1.3, sigma_b=0.7),
                                   Prior(sigma_w=0.8, sigma_b=1.2, fan_in_scaling=False)])
def test_perceptron_kernel_is_its_exact_covariance(prior):
    arch = MLP([3, 1])
    std2 = prior.std(arch) ** 2  # out = x.W + b: Cov = sum_i var(W_i) x_i x'_i + var(b)
    x = CUBE3.x.double()
    exact = x @ torch.diag(torch.from_numpy(std2[:3])) @ x.T + std2[3]
    torch.testing.assert_close(nngp_kernel(arch, prior, CUBE3.x), exact, rtol=1e-12, atol=1e-12)


def test_perceptron_function_frequencies_match_prior_counting():
    # A perceptron's output IS a Gaussian process; its kernel has rank 4 on 8 inputs, so
    # this also checks the semidefinite factor. 2 x 100k samples, all 256 functions possible.
    arch, prior, n = MLP([3, 1]), Prior(sigma_w=1.0, sigma_b=0.5), 100_000
    kernel = nngp_kernel(arch, prior, CUBE3.x)
    assert gp_factor(kernel)[1] == "semidefinite"
    gp, nets = _gp_sample(kernel, n, seed=1), _prior_keys(arch, prior, CUBE3, n, seed=2)
    assert len(gp) == n and _same_distribution(gp, nets) > 1e-3
    # The same sampler drawn conditionally on 3 inputs: P(f | S) as counting gives it.
    first, labels = np.array([6, 0, 3]), np.array([True, False, True])
    cond = _gp_sample(kernel, n, seed=3, labels=labels, first=first)
    fit = (unpack_bits(nets, 8)[:, first] == labels).all(1)
    assert (unpack_bits(cond, 8)[:, first] == labels).all() and 0.05 < len(cond) / n < 0.95
    assert abs(len(cond) / n - fit.mean()) < 5 * math.sqrt(fit.mean() * (1 - fit.mean()) * 2 / n)
    assert _same_distribution(cond, nets[fit]) > 1e-3


def _empirical_cov(arch: MLP, prior: Prior, x: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """E[f(x) f(x')] over n prior networks (the mean is 0: output weights are symmetric) and
    the standard error of each entry."""
    total, total2 = 0.0, 0.0
    for first in range(0, n, 20_000):
        f = arch.forward(prior.sample(arch, 20_000, seed=7, offset=first, dtype=torch.float64), x)[..., 0].numpy()
        prod = f[:, :, None] * f[:, None, :]
        total, total2 = total + prod.sum(0), total2 + (prod**2).sum(0)
    mean = total / n
    return mean, np.sqrt(np.maximum(total2 / n - mean**2, 0) / n)


@pytest.mark.parametrize("activation", ["relu", "sign", "identity"])
@pytest.mark.parametrize("width,bias", [(3, True), (50, True), (3, False)])
def test_one_hidden_layer_covariance_equals_kernel_at_any_width(activation, width, bias):
    arch, prior = MLP([3, width, 1], activation, bias), Prior(sigma_w=1.2, sigma_b=0.8)
    kernel = nngp_kernel(arch, prior, CUBE3.x).numpy()
    mean, se = _empirical_cov(arch, prior, CUBE3.x, 200_000)
    if not bias:  # x = 0 gives output 0 exactly, and the kernel says variance 0 there
        assert kernel[0].max() == 0 and np.abs(mean[0]).max() == 0
        mean, se, kernel = mean[1:, 1:], se[1:, 1:], kernel[1:, 1:]
    z = np.abs(mean - kernel) / se
    assert z.max() < 5, (z.max(), np.abs(mean - kernel).max())
    # Negative control: the same check on a kernel made 3% too large fails.
    assert (np.abs(mean - 1.03 * kernel) / se).max() >= 5


INNER = {  # E over z ~ N(0, 1) of phi(m + c z), c > 0: elementary Gaussian integrals
    "relu": lambda m, c: m * norm.cdf(m / c) + c * norm.pdf(m / c),
    "sign": lambda m, c: 2 * norm.cdf(m / c) - 1,
}
OUTER = {"relu": lambda t: max(t, 0.0), "sign": lambda t: float(np.sign(t))}


def _moment_by_quadrature(k11: float, k22: float, k12: float, activation: str) -> float:
    """E[phi(u) phi(v)], (u, v) ~ N(0, [[k11, k12], [k12, k22]]), written as u = a z1,
    v = b (rho z1 + s z2): the z2 expectation in closed form, the z1 one by adaptive
    quadrature split at the kink z1 = 0."""
    a, b = math.sqrt(k11), math.sqrt(k22)
    rho = k12 / (a * b)
    s = math.sqrt(1 - rho * rho)

    def outer(z1):
        return OUTER[activation](a * z1) * INNER[activation](b * rho * z1, b * s) * norm.pdf(z1)

    return sum(integrate.quad(outer, lo, hi, epsabs=1e-12, epsrel=1e-10)[0] for lo, hi in ((-12, 0), (0, 12)))


def _moment(k11: float, k22: float, k12: float, activation: str) -> float:
    return float(gaussian_product_moment(*(torch.tensor([v], dtype=torch.float64) for v in (k11, k22, k12)),
                                         activation))


def test_closed_forms_at_known_angles():
    k = torch.tensor([2.5], dtype=torch.float64)
    relu = lambda a, b, c: _moment(a, b, c, "relu")  # noqa: E731
    assert relu(2.5, 2.5, 2.5) == pytest.approx(1.25, rel=1e-12)  # theta = 0: E[relu(u)^2] = k / 2
    assert relu(2.0, 3.0, 0.0) == pytest.approx(math.sqrt(6.0) / (2 * math.pi), rel=1e-12)  # orthogonal
    assert relu(2.0, 3.0, -math.sqrt(6.0)) == pytest.approx(0.0, abs=1e-12)  # u = -v: never both positive
    sign = gaussian_product_moment(k, k, torch.tensor([0.0, 2.5, -2.5], dtype=torch.float64), "sign")
    torch.testing.assert_close(sign, torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64))


@pytest.mark.parametrize("activation", ["relu", "sign"])
@pytest.mark.parametrize("rho", [-0.9, -0.3, 0.2, 0.7, 0.95])
def test_closed_forms_match_numerical_integration(activation, rho):
    k11, k22 = 1.7, 0.6
    k12 = rho * math.sqrt(k11 * k22)
    got = _moment(k11, k22, k12, activation)
    assert got == pytest.approx(_moment_by_quadrature(k11, k22, k12, activation), rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("activation", ["relu", "sign"])
def test_two_wide_hidden_layers_approach_the_kernel(activation):
    # Covariance given the hidden layers is exact (sigma_b^2 + sigma_w^2 mean_k phi phi'), so
    # average it over 30 networks of width 2000. Finite width biases it by O(1/width) and the
    # 30 draws scatter it by about 1/sqrt(30 * 2000): tolerance 2% of the largest entry.
    width, prior, x = 2000, Prior(sigma_w=1.4, sigma_b=0.6), CUBE3.x
    arch = MLP([3, width, width, 1], activation)
    front = MLP([3, width, width], activation)  # the hidden layers: its output is arch's last pre-activation
    kernel = nngp_kernel(arch, prior, x).numpy()
    cond = []
    for j in range(30):
        theta = prior.sample(front, 1, seed=11, offset=j, dtype=torch.float64)
        h = ACTIVATIONS[activation](front.forward(theta, x)[0]).numpy()  # [N, width]
        cond.append(prior.sigma_b**2 + prior.sigma_w**2 * (h @ h.T) / width)
    def relative_error(k: np.ndarray) -> float:
        return np.abs(np.mean(cond, 0) - k).max() / np.abs(k).max()

    assert relative_error(kernel) < 0.02, relative_error(kernel)
    assert relative_error(1.03 * kernel) >= 0.02  # negative control: a kernel 3% too large fails


def test_sampler_is_bit_identical_whatever_the_batch():
    kernel = nngp_kernel(MLP([5, 20, 1]), Prior(), boolean_task(5, "01", "or").x)
    first, labels = np.array([3, 17, 0, 9]), np.array([True, True, False, True])
    factor, order, method = ordered_factor(kernel, first)
    assert method == "cholesky" and list(order[:4]) == [3, 17, 0, 9]
    n = 7 * CHUNK + 100
    for lab in (None, labels):
        whole = gp_keys(factor, order, 4, range(n_chunks(n)), n, lab)
        for per in (1, 3):
            parts = [gp_keys(factor, order, 4, range(c, min(c + per, n_chunks(n))), n, lab)
                     for c in range(0, n_chunks(n), per)]
            np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert len(whole) > 0 and not np.array_equal(whole, gp_keys(factor, order, 5, range(n_chunks(n)), n, labels))


def test_factor_is_triangular_and_exact_also_when_singular():
    for arch in (MLP([3, 1]), MLP([3, 10, 1], "identity"), MLP([3, 10, 1], "relu", bias=False)):
        kernel = nngp_kernel(arch, Prior(), CUBE3.x)
        factor, _ = gp_factor(kernel)
        assert torch.equal(factor, factor.tril())
        torch.testing.assert_close(factor @ factor.T, kernel, rtol=0, atol=1e-12 * float(kernel.max()))
    # Without bias, x = 0 has variance 0: its output is exactly 0, bit 0 in every sample.
    keys = _gp_sample(kernel, 3000, seed=0)
    assert not unpack_bits(keys, 8)[:, 0].any() and unpack_bits(keys, 8)[:, 1:].any()


def test_unsupported_settings_raise_config_error():
    x = CUBE3.x
    with pytest.raises(ConfigError, match="model.activation.*relu"):
        nngp_kernel(MLP([3, 4, 1], "tanh"), Prior(), x)
    with pytest.raises(ConfigError, match="prior.fan_in_scaling"):
        nngp_kernel(MLP([3, 4, 1]), Prior(fan_in_scaling=False), x)
    with pytest.raises(ConfigError, match="prior.name"):
        nngp_kernel(MLP([3, 4, 1]), Prior(kind="uniform"), x)
    nngp_kernel(MLP([3, 1], "tanh"), Prior(fan_in_scaling=False), x)  # a perceptron has no activation: fine


SVP = ("experiment=sgd_vs_prior", "n_samples=100", "experiment.n_prior=5000", "task.n=5", "experiment.n_train=12",
       "experiment.split_seed=3", "experiment.rare_event_top=0", "trainer.max_steps=200", "threads=1")


def test_sgd_vs_prior_counts_the_nngp(tmp_path):
    summary = _run(tmp_path / "a", *SVP, "experiment.n_nngp=30000", "batch_size=512")
    frame = pd.read_csv(tmp_path / "a" / "functions.csv", dtype={"function": str})
    assert {"count_nngp", "log_p_nngp", "ci_low_nngp", "ci_high_nngp"} <= set(frame.columns)
    assert summary["n_nngp"] == 30000 and frame["count_nngp"].sum() == summary["n_consistent_nngp"] > 50
    assert len(frame[frame["count_nngp"] > 0]) == summary["n_functions_nngp"]
    seen = frame[frame["count_nngp"] > 0]
    assert np.isclose(np.exp(seen["log_p_nngp"]).sum(), 1.0)
    assert (seen["ci_low_nngp"] <= seen["log_p_nngp"]).all() and (seen["log_p_nngp"] <= seen["ci_high_nngp"]).all()
    train = summary["train_inputs"]
    bits = unpack_bits(np.array([[int(h, 16)] for h in seen["function"]], dtype=np.uint64), 32)
    assert (bits[:, train] == boolean_task(5, "01", "or").target[train]).all()
    assert summary["log_p_train_set_nngp"]["log_p"] == pytest.approx(math.log(summary["n_consistent_nngp"] / 30000))
    assert summary["sgd_vs_nngp"]["n_shared"] > 0
    # Another batch size gives the same counts, bit for bit.
    _run(tmp_path / "b", *SVP, "experiment.n_nngp=30000", "batch_size=4096")
    assert (tmp_path / "a" / "nngp_functions.npz").read_bytes() == (tmp_path / "b" / "nngp_functions.npz").read_bytes()
    off = _run(tmp_path / "c", *SVP, "experiment.n_nngp=0")
    assert off["n_nngp"] == 0 and "count_nngp" not in pd.read_csv(tmp_path / "c" / "functions.csv").columns
    assert json.loads((tmp_path / "a" / "results.json").read_text())["summary"] == summary


@pytest.mark.parametrize("overrides,match", [
    (("experiment.n_nngp=-1",), "experiment.n_nngp"),
    (("experiment.n_nngp=lots",), "experiment.n_nngp"),
    (("model=resmlp", "experiment.n_nngp=10"), "experiment.n_nngp.*set 0 for model=resmlp"),
    (("prior.fan_in_scaling=false",), "prior.fan_in_scaling.*n_nngp=0"),
    (("model.activation=tanh",), "model.activation.*n_nngp=0"),
])
def test_bad_nngp_settings_fail_before_work(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        _run(tmp_path, *SVP, *overrides)
    assert not (tmp_path / "records.csv").exists() and not (tmp_path / "checkpoint.npz").exists()


def test_normal_rows_are_counter_sample_rows():
    rows = np.array([5, 0, 1031, 6])
    whole = counter_sample(3, 0, 1100, np.ones(9), "normal", 17, np.float64)
    np.testing.assert_array_equal(normal_rows(3, rows, 9, 17), whole[rows])


def test_killed_nngp_stage_resumes_to_the_same_counts(tmp_path, monkeypatch):
    from volume.experiments import sgd_vs_prior

    args = (*SVP, "experiment.n_nngp=6000", "batch_size=512", "checkpoint_seconds=0")
    whole = _run(tmp_path / "whole", *args)
    real = interrupt_on_call(monkeypatch, sgd_vs_prior, "gp_keys", 5)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "cut", *args)
    resumed = []
    monkeypatch.setattr(sgd_vs_prior, "gp_keys", lambda *a, **k: resumed.append(1) or real(*a, **k))
    assert _run(tmp_path / "cut", *args, "resume=true") == whole
    assert len(resumed) == n_chunks(6000) - 4  # it went on from the checkpoint, not from the start
    for name in ("functions.csv", "nngp_functions.npz"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
