"""The hand-written training step equals autograd through the stacked forward."""

from __future__ import annotations

import math

import pytest
import torch

from runs_generator._fused import loss_and_grads
from runs_generator._modelset import build_model_set
from runs_generator._noise import ModelStreams
from runs_generator._toydata import toy_config, toy_data
from runs_generator.models import forward, init_params, init_running

CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _model_set(arch: str, norm: str, problem: str, depth: int, device: torch.device = CPU, length: int = 40):
    task = "mnist1d" if arch == "cnn" else "teacher"
    losses = ("cross_entropy", "mse", "mse") if problem == "classification" else ("mse", "l1", "mse")
    cfgs = [
        toy_config(run_index=i, seed=10 + i, task=task, arch=arch, width=6, depth=depth, normalization=norm,
                   problem=problem, loss=losses[i], residual=bool(i % 2), dropout=(0.0, 0.3, 0.5)[i],
                   label_smoothing=0.1 * (i == 0), n_train=(24, 30, 30)[i], batch_size=(24, 16, 30)[i],
                   init_scale=(0.5, 1.0, 2.0)[i], replicas=2)
        for i in range(3)
    ]
    datas = [toy_data(c, n_in=5, n_outputs=3, length=length) for c in cfgs]
    return build_model_set(cfgs, datas, device, torch.float64)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("problem,depth", [("classification", 3), ("regression", 2), ("classification", 1)])
@pytest.mark.parametrize("padded", [False, True])
def test_fused_step_equals_autograd(arch: str, norm: str, problem: str, depth: int, padded: bool) -> None:
    _check_fused(arch, norm, problem, depth, padded, CPU)


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("length", [41, 9])
def test_fused_cnn_step_on_odd_signal_lengths(norm: str, length: int) -> None:
    """Odd input lengths: the strided first conv's border taps and an odd feature-map length."""
    _check_fused("cnn", norm, "classification", 3, True, CPU, length)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_fused_step_equals_autograd_on_cuda(arch: str, norm: str) -> None:
    _check_fused(arch, norm, "classification", 3, True, torch.device("cuda"))


def _check_fused(arch: str, norm: str, problem: str, depth: int, padded: bool, dev: torch.device,
                 length: int = 40) -> None:
    ms = _model_set(arch, norm, problem, depth, dev, length)
    r = ms.r
    params = init_params(ms.spec, ms.init_seeds, [1.0] * r, dev, torch.float64)
    x, y = ms.x[:, :24], ms.y[:, :24]
    rowmask = None
    if padded:  # models of different batch sizes share one padded minibatch
        counts = torch.tensor([24, 24, 16, 16, 20, 20], device=dev)
        rowmask = (torch.arange(24, device=dev).unsqueeze(0) < counts.unsqueeze(1)).double()
    dropout = ms.dropout
    active = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64, device=dev)

    run_a, run_b = init_running(ms.spec, r, dev, torch.float64), init_running(ms.spec, r, dev, torch.float64)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    counts = [24] * r if rowmask is None else rowmask.sum(1).long().tolist()

    def fresh_gen():  # padded: the per-model streams of training (each model draws its real rows only)
        if padded:
            return ModelStreams([7 + i for i in range(r)], counts, dev)
        return torch.Generator(device=dev).manual_seed(7)

    gen = fresh_gen()
    out = forward(ms.spec, leaves, x, mode="train", running=run_a, residual=ms.residual, dropout=dropout,
                  rowmask=rowmask, active=active, generator=gen)
    ref_losses = ms.objective(out, y, rowmask)
    ref = torch.autograd.grad(ref_losses.sum(), list(leaves.values()))

    p_total = sum(math.prod(v.shape[1:]) for v in params.values())
    flat = torch.full((r, p_total), float("nan"), dtype=torch.float64, device=dev)  # every entry must be written
    grads, o = {}, 0
    for k, v in params.items():
        n = math.prod(v.shape[1:])
        grads[k] = flat[:, o : o + n].view(v.shape)
        o += n
    gen = fresh_gen()
    losses = loss_and_grads(ms.spec, params, grads, x, y, ms.objective_and_grad, running=run_b, residual=ms.residual,
                            dropout=dropout, rowmask=rowmask, active=active, generator=gen)
    torch.testing.assert_close(losses, ref_losses.detach(), rtol=1e-12, atol=1e-12)
    assert bool(torch.isfinite(flat).all())
    for (name, g), gr in zip(grads.items(), ref):
        assert float(gr.abs().max()) > 0 or name.startswith("b")  # the comparison is not vacuous
        torch.testing.assert_close(g, gr, rtol=1e-10, atol=1e-12, msg=f"gradient of {name}")
    for k in run_a:
        torch.testing.assert_close(run_b[k], run_a[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("problem", ["classification", "regression"])
@pytest.mark.parametrize("padded", [False, True])
def test_objective_and_grad_equals_autograd(problem: str, padded: bool) -> None:
    """The written-out loss gradient (every loss kind mixed, label smoothing, padding) equals autograd's."""
    ms = _model_set("mlp", "none", problem, 2)
    gen = torch.Generator().manual_seed(3)
    y = ms.y[:, :24]
    out = 4.0 * torch.randn(ms.r, 24, 3, generator=gen, dtype=torch.float64)  # large logits: softmax far from uniform
    rowmask = None
    if padded:
        counts = torch.tensor([24, 24, 16, 16, 20, 20])
        rowmask = (torch.arange(24).unsqueeze(0) < counts.unsqueeze(1)).double()
    leaf = out.clone().requires_grad_(True)
    ref = ms.objective(leaf, y, rowmask)
    (ref_grad,) = torch.autograd.grad(ref.sum(), leaf)
    losses, grad = ms.objective_and_grad(out, y, rowmask)
    assert len(ms.loss_kinds) == 2
    torch.testing.assert_close(losses, ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-14)
    assert float(ref_grad.abs().min(dim=-1).values.max()) > 0
    if padded:  # padded rows get no gradient
        assert float(grad[2, 16:].abs().max()) == 0.0
