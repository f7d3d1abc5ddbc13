"""The ``sequence`` family (issue 11, book ch. 12): the query-count task and the stacked transformer.

The transformer is a custom architecture (:class:`runs_generator.models.StackedArch` with ``custom``),
trained with autograd through its stacked forward; its naive module is built from ``torch.nn``
(``nn.MultiheadAttention``, ``nn.LayerNorm``/``nn.BatchNorm1d``), so the equivalence tests compare two
independent implementations of one function.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from runs_generator._toydata import toy_config
from runs_generator.engine import train_runs
from runs_generator.models import ArchSpec, count_params, forward, init_params, init_running, stack_modules
from runs_generator.registry import inductive_bias
from runs_generator.sequence import SEQ_CLASSES, SEQ_LEN, SEQ_RARE, SEQ_VOCAB, TRANSFORMER, sequence_data
from runs_generator.spec import RunMetrics

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FLOATS = [f.name for f in fields(RunMetrics) if f.name not in ("n_params", "diverged", "diverged_step",
                                                               "wall_time_s", "extra")]


def _cfg(**kw):
    return toy_config(task="sequence", arch="transformer", **kw)


# --- data ------------------------------------------------------------------------------
def _query_counts(x: np.ndarray) -> np.ndarray:
    """The clean label of one-hot sequences (..., L, V): occurrences of position 0's token elsewhere."""
    tokens = x.argmax(-1)
    return (tokens[..., 1:] == tokens[..., :1]).sum(-1)


def test_sequence_data_is_the_query_count_and_deterministic_per_seed() -> None:
    cfg = _cfg(seed=3, n_train=300, replicas=3, noise=0.0)
    a, b = sequence_data(cfg, sweep_seed=1), sequence_data(cfg, sweep_seed=1)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "x_groups", "y_groups", "groups"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.x_train.shape == (3, 300, SEQ_LEN, SEQ_VOCAB) and a.n_outputs == SEQ_CLASSES
    assert np.all(a.x_train.sum(-1) == 1)  # one-hot
    np.testing.assert_array_equal(_query_counts(a.x_train), a.y_train)  # no noise: labels are the counts
    np.testing.assert_array_equal(_query_counts(a.x_test), a.y_test)
    np.testing.assert_array_equal(_query_counts(a.x_groups), a.y_groups)
    assert not np.array_equal(a.x_train[0], a.x_train[1])  # replicas draw their own sets
    counts = np.bincount(a.y_test, minlength=SEQ_CLASSES) / len(a.y_test)
    assert np.all(np.abs(counts - 1 / SEQ_CLASSES) < 0.05)  # balanced classes: chance is 1/4
    # the minority subgroup: queries from the rare tokens; half of the group-balanced set
    rare = a.x_groups[:, 0].argmax(-1) >= SEQ_VOCAB - SEQ_RARE
    np.testing.assert_array_equal(rare, a.groups == 1)
    assert abs(a.groups.mean() - 0.5) < 0.01

    other = sequence_data(replace(cfg, seed=4), sweep_seed=1)
    assert not np.array_equal(other.x_train, a.x_train)  # another run, other training draws
    np.testing.assert_array_equal(other.x_test, a.x_test)  # the same shared test set
    assert not np.array_equal(sequence_data(cfg, sweep_seed=2).x_test, a.x_test)


def test_label_noise_flips_the_stated_fraction_to_other_classes() -> None:
    cfg = _cfg(seed=5, n_train=400, replicas=2, noise=0.25)
    d = sequence_data(cfg, sweep_seed=0)
    clean = _query_counts(d.x_train)
    flipped = (clean != d.y_train).mean(axis=1)
    np.testing.assert_allclose(flipped, 0.25, atol=0.02)  # of train + validation, rounded once per replica
    np.testing.assert_array_equal(_query_counts(d.x_test), d.y_test)  # the test labels stay clean
    assert 0.2 < (d.y_test_noisy != d.y_test).mean() < 0.3


# --- the stacked transformer and its naive module --------------------------------------
@pytest.mark.parametrize("normalization", ["none", "batch", "layer"])
def test_stacked_forward_is_the_naive_module(normalization: str) -> None:
    spec = ArchSpec("transformer", (SEQ_LEN, SEQ_VOCAB), SEQ_CLASSES, 8, 2, normalization)
    params = init_params(spec, [1, 2], [1.0, 0.5], torch.device("cpu"), torch.float64)
    params = {k: v + 0.1 * torch.randn_like(v) for k, v in params.items()}  # norm affines and biases away from 1/0
    x = torch.from_numpy(sequence_data(_cfg(n_train=7, replicas=2), sweep_seed=0).x_train).double()
    residual = torch.tensor([True, False])
    nets = [TRANSFORMER.naive_module(spec, {k: v[r] for k, v in params.items()}, bool(residual[r]), 0.0)
            for r in range(2)]
    running = init_running(spec, 2, torch.device("cpu"), torch.float64)
    for mode in ("eval", "batchstat"):  # running statistics / the batch's own statistics
        out = forward(spec, params, x, mode=mode, running=running, residual=residual)
        for r, net in enumerate(nets):
            net.train(mode == "batchstat")
            torch.testing.assert_close(net(x[r]), out[r], rtol=1e-10, atol=1e-10)
    back, _ = stack_modules(nets, spec)
    assert list(back) == list(params) and all(torch.equal(back[k], params[k]) for k in params)
    assert count_params(spec) == sum(p.numel() for p in nets[0].parameters())


def test_the_head_reads_the_query_position_and_attention_mixes_positions() -> None:
    """Permuting the non-query positions leaves the output unchanged (no position signal needed to count);
    changing one of them changes it (attention reads every position)."""
    spec = ArchSpec("transformer", (SEQ_LEN, SEQ_VOCAB), SEQ_CLASSES, 8, 1, "layer")
    params = init_params(spec, [3], [1.0], torch.device("cpu"), torch.float64)
    params["w_pos"].zero_()  # without positional embeddings the model is permutation-invariant beyond position 0
    x = torch.from_numpy(sequence_data(_cfg(n_train=5, replicas=1), sweep_seed=0).x_train).double()
    out = forward(spec, params, x)
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(SEQ_LEN - 1)])
    torch.testing.assert_close(forward(spec, params, x[:, :, perm]), out)
    changed = x.clone()
    changed[:, :, 5] = changed[:, :, 5].roll(1, dims=-1)
    assert not torch.allclose(forward(spec, params, changed), out)


@pytest.mark.parametrize("normalization", ["none", "batch", "layer"])
def test_batched_equals_naive_in_float64(normalization: str) -> None:
    cfgs = [_cfg(run_index=i, seed=90 + i, width=8, depth=2, normalization=normalization, residual=bool(i), steps=6,
                 optimizer=("sgd", "adam")[i], lr=0.05, dropout=0.2 * i, batch_size=16, n_train=48,
                 early_stopping=bool(i), weight_decay=1e-4 * i)
            for i in range(2)]
    data = [sequence_data(c, sweep_seed=1) for c in cfgs]
    batched = train_runs(cfgs, data, dtype=torch.float64)
    naive = train_runs(cfgs, data, engine="naive", dtype=torch.float64)
    for a, b in zip(batched, naive):
        assert a.n_params == b.n_params == count_params(ArchSpec("transformer", (SEQ_LEN, SEQ_VOCAB), SEQ_CLASSES,
                                                                 8, 2, normalization))
        assert a.gradient_stability is not None and a.sharpness is not None  # preacts and double backward work
        for name in FLOATS:
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), name
            assert x is None or math.isclose(x, y, rel_tol=1e-7, abs_tol=1e-9), (normalization, name, x, y)


# --- the inductive bias is real ----------------------------------------------------------
@pytest.mark.slow
def test_transformer_learns_and_beats_the_mlp_at_similar_size() -> None:
    """On n_train = 2,000 (Adam, lr 1e-2, 500 steps of 64, layer norm, residual), K = 2 replicas.

    Measured (this config, run seed 5, sweep seed 0): transformer width 16 depth 2, 4,708 parameters: test
    accuracy 0.97; MLP width 32 depth 2, 4,420 parameters: 0.45 (it fits its training set and does not
    generalize); chance 0.25. Over run seeds 5-8 x sweep seeds 0-1: transformer 0.88-0.97, MLP 0.42-0.45.
    """
    base = dict(seed=5, depth=2, normalization="layer", residual=True, steps=500, optimizer="adam", lr=1e-2,
                batch_size=64, n_train=2000, replicas=2)
    tf_cfg, mlp_cfg = _cfg(width=16, **base), replace(_cfg(width=32, **base), arch="mlp", run_index=1)
    data = [sequence_data(c, sweep_seed=0) for c in (tf_cfg, mlp_cfg)]
    tf, mlp = (train_runs([c], [d])[0] for c, d in zip((tf_cfg, mlp_cfg), data))
    assert abs(tf.n_params / mlp.n_params - 1) < 0.1, (tf.n_params, mlp.n_params)
    chance = 1 / SEQ_CLASSES
    assert tf.generalization > 0.8, tf.generalization
    assert mlp.generalization > chance + 0.1, mlp.generalization  # the MLP learns something...
    assert tf.generalization > mlp.generalization + 0.3, (tf.generalization, mlp.generalization)  # ...far less


# --- a sequence run is a row of the table --------------------------------------------------
def test_a_sequence_run_is_a_valid_row(tmp_path) -> None:
    from causal import load_runs
    from runs_generator import storage
    from runs_generator.table import Provenance, make_row

    cfgs = [_cfg(run_index=0, seed=11, width=8, depth=2, steps=5, normalization="batch", residual=True),
            replace(_cfg(run_index=1, seed=12, width=8, depth=2, steps=5), arch="mlp")]
    data = [sequence_data(c, sweep_seed=3) for c in cfgs]
    prov = Provenance(engine="batched", device="cpu", package_version="test", torch_version="test", sweep_seed=3)
    rows = [make_row(c, d, m, prov) for c, d, m in zip(cfgs, data, train_runs(cfgs, data))]
    storage.write_shard(tmp_path, 0, rows, {})  # the schema's arrow types, as a sweep writes them
    df = load_runs(tmp_path)  # validated against the schema on read
    assert list(df["task"]) == ["sequence", "sequence"] and list(df["arch"]) == ["transformer", "mlp"]
    assert list(df["inductive_bias"]) == [1, 0] == [inductive_bias("sequence", a) for a in ("transformer", "mlp")]
    assert df["gradient_stability"].notna().all() and df["deployment_risk"].notna().all()
