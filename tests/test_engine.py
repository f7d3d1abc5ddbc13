"""The training engine: batched equals naive, model forms agree, grouping, devices, divergence."""

from __future__ import annotations

import math
import warnings
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from causal.errors import ConfigError
from runs_generator._toydata import toy_config, toy_data
from runs_generator.engine import group_key, resolve_device, train_runs
from runs_generator.models import ArchSpec, NaiveNet, forward, init_params, init_running, stack_modules

FLOAT_FIELDS = [f.name for f in fields(__import__("runs_generator.spec", fromlist=["RunMetrics"]).RunMetrics)
                if f.name not in ("n_params", "diverged", "diverged_step", "wall_time_s", "extra", "deployment_risk", "ece",
                                  # generative-only (None for supervised runs)
                                  "precision", "recall", "coverage", "density", "mode_coverage", "sample_loglik")]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _mixed_runs(seed: int) -> tuple[list, list]:
    """Six classification runs of one shape with every per-model lever mixed, plus two regression runs."""
    cfgs = [
        toy_config(
            run_index=i, seed=seed * 100 + i, width=8, lr=0.03 * (1 + i % 3),
            optimizer=("sgd", "momentum", "adam")[i % 3], loss=("cross_entropy", "mse", "mse")[i % 3],
            residual=bool(i % 2), batch_size=(16, 32, None)[i % 3], steps=8 + 3 * i, n_train=96 + 8 * i,
            early_stopping=i % 2 == 0, label_smoothing=0.1 * (i % 2), weight_decay=1e-3 * (i % 2),
            init_scale=(0.5, 1.0, 2.0)[i % 3], depth=3, normalization="batch" if seed % 2 else "layer",
        )
        for i in range(6)
    ]
    cfgs += [
        toy_config(run_index=6 + i, seed=seed * 100 + 6 + i, problem="regression", loss=("mse", "l1")[i],
                   optimizer=("adam", "momentum")[i], lr=0.01, steps=12, width=8)
        for i in range(2)
    ]
    cnn = toy_config(run_index=8, seed=seed * 100 + 8, task="mnist1d", arch="cnn", width=4, depth=2,
                     residual=True, normalization="batch", steps=6, n_train=64, batch_size=16)
    cfgs.append(cnn)
    data = [toy_data(c, n_outputs=3 if c.problem == "classification" else 2, groups=True) for c in cfgs]
    return cfgs, data


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_batched_equals_naive_float64(seed: int) -> None:
    cfgs, data = _mixed_runs(seed)
    naive = train_runs(cfgs, data, engine="naive", dtype=torch.float64)
    batched = train_runs(cfgs, data, engine="batched", dtype=torch.float64, chunk_size=32)
    for c, a, b in zip(cfgs, naive, batched):
        assert a.extra["train_losses_final"] == pytest.approx(b.extra["train_losses_final"], rel=1e-9, abs=1e-12)
        for name in FLOAT_FIELDS:
            assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-7, abs=1e-9), (c.run_index, name)
        assert a.diverged == b.diverged
        assert a.n_params == b.n_params


def test_chunking_does_not_change_results() -> None:
    cfgs, data = _mixed_runs(3)
    a = train_runs(cfgs, data, chunk_size=64, dtype=torch.float64)
    b = train_runs(cfgs, data, chunk_size=2, dtype=torch.float64)
    for x, y in zip(a, b):
        assert x.train_loss_final == pytest.approx(y.train_loss_final, rel=1e-9)
        assert x.sharpness == pytest.approx(y.sharpness, rel=1e-6, abs=1e-9)


def test_auto_chunk_size_keeps_activations_in_budget() -> None:
    from runs_generator.engine import ACTIVATION_BUDGET, CUDA_ACTIVATION_BUDGET, MAX_CHUNK, auto_chunk_size

    mlp = toy_config(width=64, batch_size=128, n_train=256)
    cnn = toy_config(task="mnist1d", arch="cnn", width=16, batch_size=128, n_train=256)
    tiny = toy_config(width=4, batch_size=16, n_train=64)
    n_mlp = auto_chunk_size([mlp], [toy_data(mlp)])
    n_cnn = auto_chunk_size([cnn], [toy_data(cnn)])
    assert n_mlp == ACTIVATION_BUDGET // (128 * 64)
    assert n_cnn == ACTIVATION_BUDGET // (128 * 20 * 16)  # 20 feature-map positions after the strided conv
    assert auto_chunk_size([tiny], [toy_data(tiny)]) == MAX_CHUNK
    # the largest batch of the group sets the size
    big = toy_config(width=64, batch_size=None, n_train=512)
    assert auto_chunk_size([mlp, big], [toy_data(mlp), toy_data(big)]) == ACTIVATION_BUDGET // (512 * 64)
    # on a GPU memory, not cache, is the limit: far larger chunks
    assert auto_chunk_size([cnn], [toy_data(cnn)], torch.device("cuda")) == CUDA_ACTIVATION_BUDGET // (128 * 20 * 16)


@pytest.mark.parametrize("arch,shape", [("mlp", (7,)), ("cnn", (40,))])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_stacked_forward_equals_module(arch: str, shape: tuple, norm: str) -> None:
    spec = ArchSpec(arch, shape, 3, 6, 3, norm)
    params = init_params(spec, [1, 2, 3], [1.0, 0.5, 2.0], torch.device("cpu"), torch.float64)
    running = init_running(spec, 3, torch.device("cpu"), torch.float64)
    x = torch.randn(3, 5, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    residual = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    out = forward(spec, params, x, mode="train", running=running, residual=residual)
    nets = [NaiveNet(spec, {k: v[r] for k, v in params.items()}, bool(residual[r]), 0.0) for r in range(3)]
    ref = torch.stack([net.train()(x[r]) for r, net in enumerate(nets)])
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    p2, run2 = stack_modules(nets)
    for k in running:
        torch.testing.assert_close(running[k], run2[k])
    eval_out = forward(spec, p2, x, mode="eval", running=run2, residual=residual)
    torch.testing.assert_close(eval_out, torch.stack([n.eval()(x[r]) for r, n in enumerate(nets)]))


def test_group_key_separates_shapes_only() -> None:
    base = toy_config()
    same = [replace(base, lr=0.3, optimizer="adam", loss="mse", dropout=0.2, residual=True, steps=99, n_train=512)]
    assert all(group_key(c) == group_key(base) for c in same)
    for change in [dict(width=32), dict(depth=3), dict(normalization="batch"), dict(arch="cnn", task="mnist1d")]:
        assert group_key(replace(base, **change)) != group_key(base)
    big = replace(base, width=256, depth=4)
    assert group_key(replace(big, batch_size=32)) != group_key(replace(big, batch_size=256))
    assert sorted([group_key(big), group_key(base)])  # keys are sortable


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")


def test_bad_inputs_are_refused() -> None:
    c = toy_config(problem="regression", loss="cross_entropy")
    with pytest.raises(ConfigError, match="cross_entropy"):
        train_runs([c], [toy_data(c)])
    with pytest.raises(ConfigError, match="engine"):
        train_runs([toy_config()], [toy_data(toy_config())], engine="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="one TaskData"):
        train_runs([toy_config()], [])


@pytest.mark.parametrize("problem", ["classification", "regression"])
@pytest.mark.parametrize("engine", ["batched", "naive"])
def test_diverged_runs_get_nulls_and_a_step(problem: str, engine: str) -> None:
    """A diverged run keeps diverged=1, its step and gradient stability; its post-training values are None."""
    loss = "cross_entropy" if problem == "classification" else "mse"  # the Brier score is bounded: it cannot blow up
    cfgs = [toy_config(run_index=i, seed=i, problem=problem, loss=loss, lr=lr, init_scale=s, depth=3, steps=30)
            for i, (lr, s) in enumerate([(1e3, 3.0), (0.01, 1.0)])]
    res = train_runs(cfgs, [toy_data(c, groups=True) for c in cfgs], engine=engine)
    bad, good = res
    assert bad.diverged and not good.diverged
    assert 1 <= bad.diverged_step <= 30 and good.diverged_step is None
    assert math.isfinite(bad.gradient_stability)
    for name in FLOAT_FIELDS + ["deployment_risk"]:
        if name not in ("gradient_stability", "train_loss_initial"):
            assert getattr(bad, name) is None, name
        assert math.isfinite(getattr(good, name)), name


@pytest.mark.parametrize("engine", ["batched", "naive"])
def test_dropout_and_augmentation_train(engine: str) -> None:
    cfgs = [toy_config(run_index=i, seed=i, dropout=0.3 * i, augmentation=bool(i), task=t, arch=a, steps=40, lr=0.1)
            for i, (t, a) in enumerate([("teacher", "mlp"), ("mnist1d", "cnn")])]
    res = train_runs(cfgs, [toy_data(c) for c in cfgs], engine=engine)
    for r in res:
        assert not r.diverged and r.convergence > 0.0
        assert 0.0 <= r.ece <= 1.0


def test_results_are_reproducible_and_ordered() -> None:
    cfgs = [toy_config(run_index=i, seed=i, width=(8, 16)[i % 2], steps=5) for i in range(4)]
    data = [toy_data(c) for c in cfgs]
    a, b = train_runs(cfgs, data), train_runs(cfgs[::-1], data[::-1])[::-1]
    assert [x.train_loss_final for x in a] == [x.train_loss_final for x in b]
    assert [x.n_params for x in a] == [10 * w + w + w * w + w + w * 3 + 3 for w in (8, 16, 8, 16)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    cfgs, data = _mixed_runs(5)
    cpu = train_runs(cfgs, data, dtype=torch.float64)
    gpu = train_runs(cfgs, data, device="cuda", dtype=torch.float64)
    for a, b in zip(cpu, gpu):
        assert a.train_loss_final == pytest.approx(b.train_loss_final, rel=1e-6)
        assert a.sharpness == pytest.approx(b.sharpness, rel=1e-5, abs=1e-6)
    assert np.isfinite([r.implicit_reg for r in gpu]).all()


@pytest.mark.parametrize("order", [("adam", "sgd", "momentum", "adam"), ("sgd", "momentum", "adam", "adam")])
def test_flat_optimizer_equals_torch_optim(order: tuple) -> None:
    """Interleaved optimizers (masked update) and optimizer blocks (row slices) both match torch.optim."""
    from runs_generator._modelset import build_model_set
    from runs_generator._trainer import FlatOptimizer

    cfgs = [toy_config(run_index=i, seed=i, optimizer=o, lr=0.01 * (i + 1), weight_decay=1e-3 * i, replicas=1)
            for i, o in enumerate(order)]
    ms = build_model_set(cfgs, [toy_data(c) for c in cfgs], torch.device("cpu"), torch.float64)
    gen = torch.Generator().manual_seed(len(order))
    flat = torch.randn(4, 7, dtype=torch.float64, generator=gen)
    refs = [torch.nn.Parameter(flat[i].clone()) for i in range(4)]
    opts = [torch.optim.Adam([p], lr=c.lr, weight_decay=c.weight_decay) if c.optimizer == "adam" else
            torch.optim.SGD([p], lr=c.lr, weight_decay=c.weight_decay, momentum=0.9 * (c.optimizer == "momentum"))
            for p, c in zip(refs, cfgs)]
    opt = FlatOptimizer(ms, flat)
    for t in range(5):
        g = torch.randn(4, 7, dtype=torch.float64, generator=gen)
        for i, (p, o) in enumerate(zip(refs, opts)):
            p.grad = g[i].clone()
            o.step()
        opt.step(g.clone(), t)
    torch.testing.assert_close(flat, torch.stack([p.detach() for p in refs]), rtol=1e-12, atol=1e-12)


def test_augment_changes_only_augmented_models() -> None:
    from runs_generator._modelset import AUG_MAX_SHIFT, build_model_set
    from runs_generator._trainer import _augment

    cfgs = [toy_config(run_index=i, seed=i, task="mnist1d", arch="cnn", width=4, augmentation=bool(i % 2), replicas=1,
                       batch_size=16) for i in range(4)]
    ms = build_model_set(cfgs, [toy_data(c) for c in cfgs], torch.device("cpu"), torch.float64)
    xb = ms.x[:, :16]
    xa = _augment(ms, xb, ms.noise_streams(), shift=True)
    shifts = range(-AUG_MAX_SHIFT, AUG_MAX_SHIFT + 1)
    for i in range(4):
        if i % 2 == 0:
            assert torch.equal(xa[i], xb[i])
            continue
        assert not torch.allclose(xa[i], xb[i])
        for row in range(16):  # a circular shift of the signal plus jitter of std 0.1
            err = min(float((xa[i, row] - torch.roll(xb[i, row], s)).abs().max()) for s in shifts)
            assert err < 0.6


@pytest.mark.parametrize("kernel,stride,pad,length", [(5, 2, 2, 40), (3, 1, 1, 20), (5, 2, 2, 41), (3, 2, 1, 7)])
def test_cnn_patches_equal_unfold_with_double_backward(kernel: int, stride: int, pad: int, length: int) -> None:
    from runs_generator.models import _patches

    h = torch.randn(2, 3, 4, length, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.nn.functional.pad(h, (pad, pad)).unfold(3, kernel, stride).permute(0, 1, 4, 2, 3).reshape(2, 3 * kernel, -1)
    leaf = h.clone().requires_grad_(True)
    assert torch.equal(_patches(h, kernel, stride, pad), ref)  # no-grad path
    assert torch.equal(_patches(leaf, kernel, stride, pad), ref)  # autograd path
    assert torch.autograd.gradgradcheck(lambda t: _patches(t, kernel, stride, pad) ** 2, (leaf,))


def test_cnn_hidden_patches_and_fold_are_adjoint_with_double_backward() -> None:
    from runs_generator.models import CNN_K, CNN_P, _cnn_hidden, _hidden_fold, _patches

    gen = torch.Generator().manual_seed(2)
    h = torch.randn(2, 3, 4 * 20, dtype=torch.float64, generator=gen)
    g = torch.randn(2, 3 * CNN_K, 4 * 20, dtype=torch.float64, generator=gen)
    assert torch.equal(_cnn_hidden(h, 4), _patches(h.view(2, 3, 4, 20), CNN_K, 1, CNN_P))
    assert float((_cnn_hidden(h, 4) * g).sum()) == pytest.approx(float((h * _hidden_fold(g, 4)).sum()), rel=1e-12)
    hl, gl = h.clone().requires_grad_(True), g.clone().requires_grad_(True)
    assert torch.equal(_cnn_hidden(hl, 4), _cnn_hidden(h, 4))
    assert torch.autograd.gradgradcheck(lambda t: _cnn_hidden(t, 4) ** 2, (hl,))
    assert torch.autograd.gradgradcheck(lambda t: _hidden_fold(t, 4) ** 2, (gl,))


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_cnn_hessian_vector_product_equals_module(norm: str) -> None:
    """Double backward through the stacked CNN equals it through nn.Conv1d modules."""
    from torch.func import functional_call

    spec = ArchSpec("cnn", (40,), 3, 4, 3, norm)
    params = init_params(spec, [1, 2], [1.0, 1.5], torch.device("cpu"), torch.float64)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 40, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 3, (2, 6), generator=gen)
    v = {k: torch.randn(t.shape, dtype=torch.float64, generator=gen) for k, t in params.items()}
    residual = torch.tensor([1.0, 0.0], dtype=torch.float64)

    def hvp(loss_of):  # H v of a loss over stacked-layout parameters
        p = {k: t.clone().requires_grad_(True) for k, t in params.items()}
        g = torch.autograd.grad(loss_of(p), list(p.values()), create_graph=True)
        return torch.autograd.grad(g, list(p.values()), grad_outputs=[v[k] for k in p])

    ce = lambda out, t: torch.nn.functional.cross_entropy(out, t, reduction="sum")  # noqa: E731
    hv = hvp(lambda p: ce(forward(spec, p, x, mode="batchstat", residual=residual).flatten(0, 1), y.flatten()))

    def module_params(p: dict[str, torch.Tensor], r: int) -> dict[str, torch.Tensor]:  # NaiveNet's layouts
        out = {"head.weight": p["wo"][r].t(), "head.bias": p["bo"][r]}
        for i in range(spec.depth):
            cin, k = (1, 5) if i == 0 else (spec.width, 3)
            out[f"layers.{i}.weight"] = p[f"w{i}"][r].reshape(cin, k, spec.width).permute(2, 0, 1)
            if norm != "batch":
                out[f"layers.{i}.bias"] = p[f"b{i}"][r]
            if norm != "none":
                out[f"norms.{i}.weight"], out[f"norms.{i}.bias"] = p[f"g{i}"][r], p[f"be{i}"][r]
        return out

    nets = [NaiveNet(spec, {k: t[r] for k, t in params.items()}, bool(residual[r]), 0.0).train() for r in range(2)]
    ref = hvp(lambda p: sum(ce(functional_call(nets[r], module_params(p, r), (x[r],)), y[r]) for r in range(2)))
    for name, a, b in zip(params, hv, ref):
        assert float(b.abs().max()) > 0 or name.startswith(("b", "be"))
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"H v for {name}")


@pytest.mark.parametrize("length", [40, 41])
def test_padded_cnn_batch_norm_equals_module_on_real_rows(length: int) -> None:
    """Batch statistics over a padded minibatch use each model's real rows only, as a module on those rows."""
    spec = ArchSpec("cnn", (length,), 3, 4, 2, "batch")
    params = init_params(spec, [1, 2], [1.0, 0.7], torch.device("cpu"), torch.float64)
    running = init_running(spec, 2, torch.device("cpu"), torch.float64)
    x = torch.randn(2, 7, length, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    counts = [7, 4]
    x[1, 4:] = 1e3  # padded rows: garbage that must not reach the statistics
    rowmask = (torch.arange(7).unsqueeze(0) < torch.tensor(counts).unsqueeze(1)).double()
    residual = torch.tensor([1.0, 0.0], dtype=torch.float64)
    out = forward(spec, params, x, mode="train", running=running, residual=residual, rowmask=rowmask)
    for r in range(2):
        net = NaiveNet(spec, {k: v[r] for k, v in params.items()}, bool(residual[r]), 0.0).double().train()
        ref = net(x[r, : counts[r]])
        torch.testing.assert_close(out[r, : counts[r]], ref, rtol=1e-10, atol=1e-12)
        _, run_ref = stack_modules([net])
        for k in running:
            torch.testing.assert_close(running[k][r], run_ref[k][0], rtol=1e-12, atol=1e-12)


def test_update_running_keeps_inactive_models_exactly() -> None:
    from runs_generator.models import update_running

    running = {"rm0": torch.tensor([[float("inf"), 1.0], [0.5, 2.0]]), "rv0": torch.tensor([[1.0, 1.0], [1.0, 1.0]])}
    mean = torch.tensor([[[3.0, 4.0]], [[5.0, 6.0]]])
    var = torch.full((2, 1, 2), 2.0)
    update_running(running, 0, mean, var, torch.tensor([5.0, 5.0]), torch.tensor([0.0, 1.0]))
    assert running["rm0"][0, 0] == float("inf") and running["rm0"][0, 1] == 1.0  # inactive: unchanged
    torch.testing.assert_close(running["rm0"][1], torch.tensor([0.95, 2.4]))  # 0.9 * old + 0.1 * batch mean
    torch.testing.assert_close(running["rv0"][1], torch.tensor([1.15, 1.15]))  # 0.9 + 0.1 * unbiased 2 * 5 / 4


def _noisy_runs() -> tuple[list, list]:
    """Runs with dropout and augmentation (the per-model random streams), padded batches, two shapes."""
    cfgs = []
    for i in range(10):
        cnn = i >= 6
        cfgs.append(toy_config(
            run_index=i, seed=900 + i, task="mnist1d" if cnn else "teacher", arch="cnn" if cnn else "mlp",
            width=4 if cnn else 8, depth=3, dropout=(0.0, 0.2, 0.5)[i % 3], augmentation=i % 2 == 1,
            batch_size=(8, 16, None)[i % 3], n_train=(24, 40)[i % 2], steps=6 + i % 4,
            optimizer=("sgd", "momentum", "adam")[i % 3], lr=0.02, normalization=("none", "batch", "layer")[i % 3],
            residual=i % 2 == 0, early_stopping=i % 4 == 0))
    return cfgs, [toy_data(c, groups=True) for c in cfgs]


def _assert_same_metrics(a, b, where: str) -> None:
    for name in FLOAT_FIELDS + ["deployment_risk", "ece"]:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
            assert (x is None or math.isnan(x)) and (y is None or math.isnan(y)), (where, name, x, y)
            continue
        assert x == pytest.approx(y, rel=1e-7, abs=1e-9), (where, name, x, y)
    assert a.diverged == b.diverged, where


@pytest.mark.parametrize("device,kind", [
    ("cpu", "generator"), ("cpu", "counter"),
    pytest.param("cuda", "auto", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_row_depends_only_on_config_and_seed(device: str, kind: str, monkeypatch) -> None:
    """A run's metrics are the same alone, in one chunk with every other run, and with the naive engine.

    Every random stream (init, minibatches, dropout, augmentation, Hessian start)
    is per run and replica, so grouping cannot change a row (float64: only
    summation order differs). Both noise-stream kinds (torch generators, the
    CPU default; counter-based, the CUDA default).
    """
    from runs_generator import _noise

    monkeypatch.setattr(_noise, "NOISE_KIND", kind)
    cfgs, data = _noisy_runs()
    together = train_runs(cfgs, data, dtype=torch.float64, chunk_size=64, device=device)
    reverse = train_runs(cfgs[::-1], data[::-1], dtype=torch.float64, chunk_size=8, device=device)[::-1]
    for i, (c, d) in enumerate(zip(cfgs, data)):
        alone = train_runs([c], [d], dtype=torch.float64, device=device)[0]
        _assert_same_metrics(alone, together[i], f"run {i}: alone vs chunk of 64")
        _assert_same_metrics(alone, reverse[i], f"run {i}: alone vs other chunks")
    naive = train_runs(cfgs[::3], data[::3], engine="naive", dtype=torch.float64, device=device)
    for c, a, b in zip(cfgs[::3], naive, together[::3]):
        _assert_same_metrics(a, b, f"run {c.run_index}: naive vs batched")


def _runs_of_many_widths() -> tuple[list, list]:
    """MLP and CNN runs whose only shape difference is their width, with every lever that draws noise."""
    from runs_generator._toydata import mixed_width_runs

    return mixed_width_runs()


@pytest.mark.parametrize("device,kind", [
    ("cpu", "generator"), ("cpu", "counter"),
    pytest.param("cuda", "auto", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_padded_width_equals_alone(device: str, kind: str, monkeypatch) -> None:
    """A run trained in a chunk padded to a wider width has the metrics of the run trained alone.

    Each normalization pairs runs of two widths (MLP 8/12/16, CNN 4/6/8), with dropout, augmentation,
    early stopping and mixed optimizers, so padding meets layer norm's statistics, dropout draws,
    initialization, the Hessian's start vectors and the head's (position-major) CNN layout.
    """
    from runs_generator import _modelset, _noise

    monkeypatch.setattr(_noise, "NOISE_KIND", kind)
    built = []
    real_build = _modelset.build_model_set

    def spy(*args, **kwargs):
        ms = real_build(*args, **kwargs)
        built.append(ms.spec.units)
        return ms

    monkeypatch.setattr(_modelset, "build_model_set", spy)
    cfgs, data = _runs_of_many_widths()
    padded = train_runs(cfgs, data, dtype=torch.float64, chunk_size=64, device=device, pad_widths=True)
    widths = [set(u) for u in built if u is not None]
    assert len(widths) >= 6 and all(len(w) == 2 for w in widths), built  # every pair trained padded
    built.clear()
    for i, (c, d) in enumerate(zip(cfgs, data)):
        alone = train_runs([c], [d], dtype=torch.float64, device=device, pad_widths=True)[0]
        _assert_same_metrics(alone, padded[i], f"run {i} ({c.arch} width {c.width}, {c.normalization}): alone vs padded")
        assert alone.n_params == padded[i].n_params, (i, alone.n_params, padded[i].n_params)
    assert built == [None] * len(cfgs)  # alone, nothing is padded
    # and the default: padding on CUDA only
    built.clear()
    train_runs(cfgs[:2], data[:2], dtype=torch.float64, device=device)
    assert (built[0] is not None) == (device == "cuda"), built


class _ReplayedStep:
    """A stand-in for a captured CUDA graph on CPU: replaying it runs the captured step again."""

    def __init__(self, fn):
        self.fn = fn

    def replay(self) -> None:
        self.fn()


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_graphed_training_loop_equals_the_eager_loop(device: str, monkeypatch) -> None:
    """The CUDA-graph loop trains every run exactly as the eager loop.

    The captured step reads everything that changes between steps (step number, Adam's bias
    corrections, minibatch indices, the active mask and learning rates of finished models) from static
    buffers. On CUDA this is the real capture and replay; on CPU a capture records the step and a
    replay runs it, which checks the loop's bookkeeping (warm-up, both variants, early stopping, models
    finishing at different steps, padded widths).
    """
    from runs_generator import _noise, _trainer

    monkeypatch.setattr(_noise, "NOISE_KIND", "counter")
    cfgs, data = _runs_of_many_widths()
    cfgs = [replace(c, steps=14 + 3 * (i % 4)) for i, c in enumerate(cfgs)]
    monkeypatch.setattr(_trainer, "CUDA_GRAPHS", False)
    eager = train_runs(cfgs, data, dtype=torch.float64, chunk_size=64, device=device, pad_widths=True)
    monkeypatch.setattr(_trainer, "CUDA_GRAPHS", True)
    monkeypatch.setattr(_trainer, "GRAPH_STEPS", 4)  # blocks of 4 steps between the events of 14-23-step runs
    captured, per_replay = [], []
    if device == "cpu":
        from runs_generator._noise import CounterStreams

        calls = [0]
        real_step = _trainer.loss_and_grads

        def counted_step(*args, **kwargs):
            calls[0] += 1
            return real_step(*args, **kwargs)

        class _CountedReplay(_ReplayedStep):
            def replay(self) -> None:
                before = calls[0]
                super().replay()
                per_replay.append(calls[0] - before)

        monkeypatch.setattr(_trainer, "loss_and_grads", counted_step)
        monkeypatch.setattr(_trainer, "_graphable", lambda ms, fused, streams: fused and isinstance(streams, CounterStreams))
        monkeypatch.setattr(_trainer, "_on_side_stream", lambda fn, dev: fn())
        monkeypatch.setattr(_trainer, "_capture", lambda fn, pool: captured.append(1) or _CountedReplay(fn))
    else:
        real = _trainer._capture
        monkeypatch.setattr(_trainer, "_capture", lambda fn, pool: captured.append(1) or real(fn, pool))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed capture (falling back to eager steps) fails the test
        graphed = train_runs(cfgs, data, dtype=torch.float64, chunk_size=64, device=device, pad_widths=True)
    assert len(captured) >= 4, captured  # both variants of at least two chunks
    assert not _trainer._CAPTURE_FAILED
    if device == "cpu":  # replays of one step and of 4-step blocks both trained
        assert set(per_replay) == {1, 4}, sorted(set(per_replay))
    for i, (a, b) in enumerate(zip(eager, graphed)):
        _assert_same_metrics(a, b, f"run {i}: eager vs graphed loop")


def test_early_stopping_without_a_finite_validation_loss_keeps_the_final_state(monkeypatch) -> None:
    """Early stopping restores each model's best validated state; a model whose validation loss was never
    finite keeps its final state (as if its last validation were its best), not its initial weights,
    whose metrics would pass for a trained run's."""
    from runs_generator import _trainer

    cfg = replace(toy_config(width=16), steps=20, batch_size=16, early_stopping=True)
    data = toy_data(cfg)
    calls = [0]

    def improving(ms, params, running):  # every validation is the best so far: the final state is kept
        calls[0] += 1
        return torch.full((ms.r,), -float(calls[0]), dtype=ms.dtype, device=ms.device)

    monkeypatch.setattr(_trainer, "_val_loss", improving)
    final = train_runs([cfg], [data], dtype=torch.float64)[0]
    assert calls[0] > 1
    monkeypatch.setattr(_trainer, "_val_loss", lambda ms, params, running: torch.full(
        (ms.r,), float("nan"), dtype=ms.dtype, device=ms.device))
    never = train_runs([cfg], [data], dtype=torch.float64)[0]
    _assert_same_metrics(final, never, "validation loss never finite vs always improving")
    assert never.train_loss_final < 0.9 * never.train_loss_initial  # trained, not reset to the initial weights


def test_a_failed_block_capture_trains_every_remaining_step_eagerly(monkeypatch) -> None:
    """The one-step graph captures, the block of GRAPH_STEPS fails (on a GPU: memory, an op that cannot
    be captured): the loop warns and trains every remaining step eagerly, each counted once, so the
    run equals the eager loop's (a block's steps must not be skipped)."""
    from runs_generator import _noise, _trainer
    from runs_generator._noise import CounterStreams

    monkeypatch.setattr(_noise, "NOISE_KIND", "counter")
    cfg = replace(toy_config(width=16), steps=40, batch_size=16)
    data = toy_data(cfg)
    calls = [0]
    real_step = _trainer.loss_and_grads

    def counted_step(*args, **kwargs):
        calls[0] += 1
        return real_step(*args, **kwargs)

    monkeypatch.setattr(_trainer, "loss_and_grads", counted_step)
    monkeypatch.setattr(_trainer, "CUDA_GRAPHS", False)
    eager = train_runs([cfg], [data], dtype=torch.float64)[0]
    eager_calls, calls[0] = calls[0], 0
    assert eager_calls == cfg.steps

    blocks = []

    def capture_one_step_only(fn, pool):
        k = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))["k"]
        blocks.append(k)
        if k > 1:
            raise RuntimeError("simulated capture failure of a block of steps")
        return _ReplayedStep(fn)

    monkeypatch.setattr(_trainer, "CUDA_GRAPHS", True)
    monkeypatch.setattr(_trainer, "_CAPTURE_FAILED", False)
    monkeypatch.setattr(_trainer, "_graphable", lambda ms, fused, streams: fused and isinstance(streams, CounterStreams))
    monkeypatch.setattr(_trainer, "_on_side_stream", lambda fn, dev: fn())
    monkeypatch.setattr(_trainer, "_capture", capture_one_step_only)
    with pytest.warns(RuntimeWarning, match="CUDA graph capture of the training step failed"):
        graphed = train_runs([cfg], [data], dtype=torch.float64)[0]
    assert 1 in blocks and _trainer.GRAPH_STEPS in blocks, blocks  # the block capture was tried, and failed
    assert _trainer._CAPTURE_FAILED
    assert calls[0] == cfg.steps, (calls[0], cfg.steps)
    _assert_same_metrics(eager, graphed, "eager vs a graphed loop whose block capture failed")


@pytest.mark.parametrize("graphs", [False, True])
def test_interleaved_chunks_train_exactly_as_one_after_another(graphs: bool, monkeypatch) -> None:
    """Chunks whose steps interleave on one thread (CUDA: one stream each) give bit-identical rows.

    Every chunk owns its tensors and random streams, so running other chunks' steps between two of
    its own changes nothing; with ``graphs`` the CPU stand-in of the CUDA-graph loop interleaves too.
    """
    from runs_generator import _noise, _trainer

    monkeypatch.setattr(_noise, "NOISE_KIND", "counter")
    if graphs:
        from runs_generator._noise import CounterStreams

        monkeypatch.setattr(_trainer, "_graphable", lambda ms, fused, streams: fused and isinstance(streams, CounterStreams))
        monkeypatch.setattr(_trainer, "_on_side_stream", lambda fn, dev: fn())
        monkeypatch.setattr(_trainer, "_capture", lambda fn, pool: _ReplayedStep(fn))
    cfgs, data = _runs_of_many_widths()
    cfgs = [replace(c, steps=10 + 5 * (i % 3)) for i, c in enumerate(cfgs)]
    one = train_runs(cfgs, data, chunk_size=8, pad_widths=True)
    mixed = train_runs(cfgs, data, chunk_size=8, pad_widths=True, concurrent=3)
    for i, (a, b) in enumerate(zip(one, mixed)):
        for name in FLOAT_FIELDS + ["deployment_risk", "ece", "diverged", "n_params"]:
            x, y = getattr(a, name), getattr(b, name)
            assert x == y or (x != x and y != y), (i, name, x, y)  # bit-identical (NaN equals NaN)


def test_group_key_pads_width_only_where_the_arch_can() -> None:
    base = toy_config(width=16)
    assert group_key(replace(base, width=64), pad=True) == group_key(base, pad=True)
    assert group_key(replace(base, width=64)) != group_key(base)
    cnn = toy_config(task="mnist1d", arch="cnn", width=8)
    assert group_key(replace(cnn, width=32), pad=True) == group_key(cnn, pad=True)
    # a run whose model step is large keeps its own width: padding it would multiply its FLOPs
    big = replace(base, width=256, depth=4, batch_size=256, n_train=1024)
    assert group_key(big, pad=True) != group_key(replace(big, width=128), pad=True)
    assert group_key(big, pad=True)[-1] == 256
    from runs_generator.models import padded_spec
    from runs_generator._modelset import arch_spec

    seq = [ArchSpec("transformer", (8, 16), 4, w, 2, "layer") for w in (16, 32)]
    with pytest.raises(ValueError, match="pads_width"):
        padded_spec(seq)
    with pytest.raises(ValueError, match="more than their width"):
        padded_spec([arch_spec(base, toy_data(base)), arch_spec(replace(base, depth=3), toy_data(base))])


def test_counter_streams_have_the_right_distributions_and_ignore_padding() -> None:
    from runs_generator._noise import CounterStreams

    big = CounterStreams([7, 8], [300, 200], torch.device("cpu"))
    z = big.jitter(torch.zeros(2, 300, 40, dtype=torch.float64))
    assert abs(float(z[0].mean())) < 0.02 and float(z[0].std()) == pytest.approx(1.0, abs=0.02)
    assert float(z[1, 200:].abs().max()) == 0.0  # padded rows draw nothing
    u = big.hidden_uniform(torch.zeros(2, 300, 64, dtype=torch.float64), False, 300)
    assert float(u[0].mean()) == pytest.approx(0.5, abs=0.01) and 0 < float(u[0].min()) and float(u[0].max()) < 1
    s = big.shifts(300, -4, 4)
    assert set(s[0].flatten().tolist()) == set(range(-4, 5))
    # model 1's values do not depend on model 0 or on the padded batch size
    alone = CounterStreams([8], [200], torch.device("cpu"))
    torch.testing.assert_close(alone.jitter(torch.zeros(1, 200, 40, dtype=torch.float64))[0], z[1, :200])


def test_engine_settings_from_the_environment_are_checked(monkeypatch) -> None:
    """``UDL_CUDA_STREAMS`` / ``UDL_GRAPH_STEPS``: unset gives the default, a bad value names the variable."""
    from runs_generator._data import env_int

    monkeypatch.delenv("UDL_CUDA_STREAMS", raising=False)
    assert env_int("UDL_CUDA_STREAMS", 16) == 16
    monkeypatch.setenv("UDL_CUDA_STREAMS", "4")
    assert env_int("UDL_CUDA_STREAMS", 16) == 4
    for bad in ("four", "0", "-2", "1.5"):
        monkeypatch.setenv("UDL_CUDA_STREAMS", bad)
        with pytest.raises(ConfigError, match=r"UDL_CUDA_STREAMS must be an integer >= 1; received"):
            env_int("UDL_CUDA_STREAMS", 16)


def test_interleaved_chunks_start_longest_first(monkeypatch) -> None:
    """With chunks interleaved, the longest budgets start first, so that no long chunk runs alone at the end."""
    from runs_generator import engine

    seen = []
    real = engine._train_chunks

    def spy(chunks, configs, *args):
        seen.append([max(configs[j].steps for j in ch) for ch in chunks])
        return real(chunks, configs, *args)

    monkeypatch.setattr(engine, "_train_chunks", spy)
    cfgs, data = _runs_of_many_widths()
    cfgs = [replace(c, steps=6 + 3 * (i % 3)) for i, c in enumerate(cfgs)]
    train_runs(cfgs, data, chunk_size=4, concurrent=1)
    train_runs(cfgs, data, chunk_size=4, concurrent=3)
    one, interleaved = seen
    assert len(set(one)) > 1 and one != sorted(one, reverse=True)  # the grouping's order: short budgets first
    assert interleaved == sorted(one, reverse=True)


@pytest.mark.parametrize("room", [True, False])
def test_interleaved_chunks_start_only_while_the_device_has_room(room: bool, monkeypatch) -> None:
    """Without room (a full GPU) chunks train one at a time; with it, several at once; the rows are the same."""
    from runs_generator import _trainer, engine

    running, most = [0], [0]
    real = _trainer.train_steps

    def counted(ms, **kwargs):
        running[0] += 1
        most[0] = max(most[0], running[0])
        out = yield from real(ms, **kwargs)
        running[0] -= 1
        return out

    cfgs, data = _runs_of_many_widths()
    cfgs = [replace(c, steps=6 + 3 * (i % 3)) for i, c in enumerate(cfgs)]
    one = train_runs(cfgs, data, chunk_size=4, concurrent=1)
    monkeypatch.setattr(_trainer, "train_steps", counted)
    monkeypatch.setattr(engine, "_device_room", lambda dev: room)
    mixed = train_runs(cfgs, data, chunk_size=4, concurrent=3)
    assert most[0] == (3 if room else 1), most
    for i, (a, b) in enumerate(zip(one, mixed)):
        _assert_same_metrics(a, b, f"run {i}")
