"""Small Gaussian-teacher data for engine tests and the engine benchmark.

Independent of :mod:`runs_generator.tasks` so the engine can be tested alone.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from runs_generator.spec import RunConfig, TaskData

__all__ = ["toy_config", "toy_data", "mixed_width_runs"]


def toy_config(**overrides) -> RunConfig:
    """A RunConfig with small, sane defaults; keyword arguments override fields."""
    base = RunConfig(
        run_index=0, seed=0, task="teacher", problem="classification", arch="mlp", width=16, depth=2,
        loss="cross_entropy", init_scale=1.0, optimizer="sgd", lr=0.05, batch_size=32, weight_decay=0.0,
        dropout=0.0, label_smoothing=0.0, augmentation=False, early_stopping=False, normalization="none",
        residual=False, n_train=128, noise=0.0, noise_dist="gaussian", steps=20, replicas=2,
    )
    return replace(base, **overrides)


def toy_data(config: RunConfig, *, n_in: int = 10, n_outputs: int = 3, n_test: int = 200, n_val: int = 64,
             data_seed: int | None = None, groups: bool = False, length: int = 40) -> TaskData:
    """Teacher data for ``config``: inputs N(0, I), a random 1-hidden-layer tanh teacher.

    Classification labels are the teacher's argmax (with ``config.noise`` label
    flips); regression targets are its outputs plus Gaussian noise of std
    ``config.noise``. Signals (task ``mnist1d``) have ``length`` positions. Each replica gets its own training and validation draw.
    """
    rng = np.random.default_rng(config.seed if data_seed is None else data_seed)
    in_shape = (length,) if config.task == "mnist1d" else (n_in,)
    d = int(np.prod(in_shape))
    w1 = rng.normal(size=(d, 32)) / np.sqrt(d)
    w2 = rng.normal(size=(32, n_outputs)) * 2.0 / np.sqrt(32)

    def draw(n: int, shift: float = 0.0):
        x = rng.normal(size=(n, *in_shape)) + shift
        f = np.tanh(x.reshape(n, -1) @ w1) @ w2
        return x.astype(np.float32), f

    def labels(f: np.ndarray, noisy: bool):
        if config.problem == "classification":
            y = f.argmax(1)
            if noisy and config.noise > 0:
                flip = rng.random(len(y)) < config.noise
                y = np.where(flip, rng.integers(0, n_outputs, len(y)), y)
            return y.astype(np.int64)
        return (f + (config.noise * rng.normal(size=f.shape) if noisy else 0.0)).astype(np.float32)

    k = config.replicas
    xs, ys, xv, yv = [], [], [], []
    for _ in range(k):
        x, f = draw(config.n_train)
        xs.append(x)
        ys.append(labels(f, True))
        x, f = draw(n_val)
        xv.append(x)
        yv.append(labels(f, True))
    x_test, f_test = draw(n_test)
    x_groups = y_groups = group = None
    if groups:  # a separate, group-balanced set: half of it shifted by 1.5
        group = (np.arange(n_test) % 2).astype(np.int64)
        x_groups, _ = draw(n_test)
        x_groups[group == 1] += 1.5
        y_groups = labels(np.tanh(x_groups.reshape(n_test, -1) @ w1) @ w2, False)
    return TaskData(
        problem=config.problem, n_outputs=n_outputs, x_train=np.stack(xs), y_train=np.stack(ys),
        x_val=np.stack(xv), y_val=np.stack(yv), x_test=x_test, y_test=labels(f_test, False),
        y_test_noisy=labels(f_test, True), x_groups=x_groups, y_groups=y_groups, groups=group,
    )


def mixed_width_runs() -> tuple[list[RunConfig], list[TaskData]]:
    """Twelve MLP and CNN runs that differ in width within each (arch, normalization) pair, with every
    lever that draws noise (dropout, augmentation, early stopping, mixed optimizers and batch sizes):
    the padding, CUDA-graph and interleaving tests' runs."""
    cfgs = []
    for i in range(12):
        cnn = i >= 6
        cfgs.append(toy_config(
            run_index=i, seed=700 + i, task="mnist1d" if cnn else "teacher", arch="cnn" if cnn else "mlp",
            width=(4, 6, 8)[i % 3] if cnn else (8, 12, 16)[i % 3], depth=3,
            dropout=(0.0, 0.2, 0.5)[i % 3] if i % 2 else 0.3, augmentation=i % 2 == 1,
            batch_size=(8, 16, None)[i % 3], n_train=(24, 40)[i % 2], steps=6 + i % 4,
            optimizer=("sgd", "momentum", "adam")[(i // 3) % 3], lr=0.02,
            normalization=("none", "batch", "layer")[(i // 2) % 3], residual=i % 2 == 0, early_stopping=i % 4 == 0))
    return cfgs, [toy_data(c, groups=True) for c in cfgs]
