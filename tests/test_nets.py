"""Batched forwards against a per-network torch.nn oracle; parameter layouts."""
import numpy as np
import pytest
import torch

from volume.errors import ConfigError
from volume.nets import MLP, ResidualMLP
from volume.priors import Prior


def mlp_oracle(arch: MLP, theta_row: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The same network built from torch.nn layers, one at a time."""
    acts = {"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh(), "identity": torch.nn.Identity()}
    layers = []
    for i in range(arch.n_layers):
        lin = torch.nn.Linear(arch.widths[i], arch.widths[i + 1], bias=arch.bias, dtype=theta_row.dtype)
        with torch.no_grad():
            lin.weight.copy_(arch.slice(f"W{i}").view(theta_row[None])[0].T)
            if arch.bias:
                lin.bias.copy_(arch.slice(f"b{i}").view(theta_row[None])[0])
        layers.append(lin)
        if i < arch.n_layers - 1:
            layers.append(acts[arch.activation])
    with torch.no_grad():
        return torch.nn.Sequential(*layers)(x)


@pytest.mark.parametrize("widths,activation,bias", [([7, 40, 40, 1], "relu", True), ([5, 3, 2], "tanh", False),
                                                    ([4, 1], "relu", True), ([3, 6, 6, 6, 2], "identity", True)])
def test_mlp_matches_torch_nn(widths, activation, bias):
    arch = MLP(widths, activation, bias)
    expected_p = sum(a * b + (b if bias else 0) for a, b in zip(widths[:-1], widths[1:]))
    assert arch.n_params == expected_p
    theta = Prior().sample(arch, 6, seed=1, dtype=torch.float64)
    x = torch.randn(11, widths[0], dtype=torch.float64)
    out = arch.forward(theta, x)
    assert out.shape == (6, 11, widths[-1])
    for b in range(6):
        torch.testing.assert_close(out[b], mlp_oracle(arch, theta[b], x))
    pre = arch.preactivations(theta, x)
    torch.testing.assert_close(pre[-1], out)


def test_sign_activation():
    arch = MLP([2, 1, 1], "sign", bias=False)
    theta = torch.tensor([[1.0, 1.0, 2.0]])  # h = sign(x1 + x2), out = 2 h
    x = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    assert arch.forward(theta, x)[0, :, 0].tolist() == [2.0, -2.0, 0.0]


def test_residual_mlp_matches_loop():
    arch = ResidualMLP(n_in=4, n_blocks=3, block_width=2, stream_width=6)
    theta = Prior().sample(arch, 3, seed=2, dtype=torch.float64)
    x = torch.randn(5, 4, dtype=torch.float64)
    out = arch.forward(theta, x)
    for b in range(3):
        p = {s.name: s.view(theta[b : b + 1])[0] for s in arch.slices}
        r = torch.cat([x, torch.zeros(5, 2, dtype=torch.float64)], 1)
        for k in range(3):
            r = r + torch.relu(r @ p[f"W_in{k}"] + p[f"b_in{k}"]) @ p[f"W_out{k}"] + p[f"b_out{k}"]
        torch.testing.assert_close(out[b], r @ p["W_read"] + p["b_read"])


def test_prior_std_follows_fan_in():
    arch = MLP([7, 40, 1])
    std = Prior(sigma_w=2.0, sigma_b=0.5).std(arch)
    assert np.allclose(std[arch.slice("W0").start : arch.slice("W0").stop], 2 / np.sqrt(7))
    assert np.allclose(std[arch.slice("W1").start : arch.slice("W1").stop], 2 / np.sqrt(40))
    assert np.allclose(std[arch.slice("b0").start : arch.slice("b0").stop], 0.5)
    assert np.allclose(Prior(sigma_w=2.0, fan_in_scaling=False).std(arch)[: 7 * 40], 2.0)


def test_prior_sample_variance_matches_std():
    arch = MLP([7, 40, 1])
    for kind in ("gaussian", "uniform"):
        prior = Prior(kind, sigma_w=1.5, sigma_b=0.7)
        theta = prior.sample(arch, 4000, seed=3, dtype=torch.float64).numpy()
        ratio = theta.var(0, ddof=1) / prior.std(arch) ** 2
        # Every parameter on its own (an average over all would hide one wrong slice): the
        # sample variance's relative sd is sqrt((kurtosis - 1) / n), kurtosis 3 (Gaussian), 1.8 (uniform).
        sd = np.sqrt(((3.0 if kind == "gaussian" else 1.8) - 1) / len(theta))
        assert np.abs(ratio - 1).max() < 5 * sd, (kind, np.abs(ratio - 1).max() / sd)


@pytest.mark.parametrize("bad", [dict(widths=[7, 0, 1]), dict(widths=[7, -3, 1]), dict(activation="gelu")])
def test_bad_architectures(bad):
    with pytest.raises(ConfigError):
        MLP(**{"widths": [7, 4, 1], **bad})
