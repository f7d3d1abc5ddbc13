"""The contract between the sweep (levers, tasks, storage) and the training engine.

The sweep draws a :class:`RunConfig` per run and builds its :class:`TaskData`;
the engine (:func:`runs_generator.engine.train_runs`) trains each run's K
replicas and returns one :class:`RunMetrics` per run. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "Task",
    "Problem",
    "Arch",
    "Loss",
    "Optimizer",
    "Normalization",
    "NoiseDist",
    "Engine",
    "RunConfig",
    "TaskData",
    "RunMetrics",
]

Task = Literal["teacher", "mnist1d", "generative", "transfer", "graph", "sequence"]
Problem = Literal["classification", "regression", "generation"]
Arch = Literal["mlp", "cnn", "vae", "gan", "flow", "diffusion", "gnn", "transformer"]
# l1: regression only; elbo, adversarial, nll, denoising: the generative objectives of vae, gan, flow, diffusion
Loss = Literal["cross_entropy", "mse", "l1", "elbo", "adversarial", "nll", "denoising"]
Optimizer = Literal["sgd", "momentum", "adam"]
Normalization = Literal["none", "batch", "layer"]
NoiseDist = Literal["gaussian", "laplace"]
Engine = Literal["batched", "naive"]


@dataclass(frozen=True)
class RunConfig:
    """Every resolved lever of one run (one parquet row).

    ``batch_size`` is ``None`` for full-batch training (the lever value 'full').
    """

    run_index: int  # index within the sweep
    seed: int  # the run's own seed (derived from sweep seed and run index)
    task: Task
    problem: Problem
    arch: Arch
    width: int  # hidden units (mlp) or channels (cnn) per hidden layer
    depth: int  # hidden layers
    loss: Loss
    init_scale: float  # multiple of the He std
    optimizer: Optimizer
    lr: float
    batch_size: int | None  # None = full batch
    weight_decay: float
    dropout: float
    label_smoothing: float
    augmentation: bool
    early_stopping: bool
    normalization: Normalization
    residual: bool
    n_train: int
    noise: float  # label-noise fraction, or regression noise std / signal std
    noise_dist: NoiseDist
    steps: int
    epochs: float = 0.0  # the budget in passes over the training set (steps = max(min, epochs x n / batch))
    replicas: int = 4  # K
    pretrained: bool = False  # transfer: start from a model trained on the source task (False elsewhere)
    source_similarity: float | None = None  # transfer: similarity of the target to its source (None elsewhere)
    source_steps: int | None = None  # transfer: the source model's training budget (None unless pretrained)

    @property
    def effective_batch(self) -> int:
        return self.n_train if self.batch_size is None else min(self.batch_size, self.n_train)


@dataclass
class TaskData:
    """The data of one run: K independent training draws and one shared test set.

    Shapes (``K`` replicas, ``n`` = n_train, ``in`` = input shape, ``C`` classes
    or output dims):

    - ``x_train``: (K, n, *in) float32
    - ``y_train``: (K, n) int64 for classification (possibly noisy labels), or
      (K, n, C) float32 for regression (noisy targets)
    - ``x_val``, ``y_val``: (K, n_val, *in), validation draws for early stopping
    - ``x_test``: (n_test, *in), the **in-distribution** test set (the training
      mixture of subgroups); ``y_test``: (n_test,) clean labels or (n_test, C)
      noise-free targets (what accuracy, R² and bias² are measured against)
    - ``y_test_noisy``: test targets with the same noise as training (test loss)
    - ``x_groups``, ``y_groups``: a separate **group-balanced** test set (clean
      targets) and ``groups`` (n_groups,) int64 subgroup ids (0 majority, 1
      minority), for ``deployment_risk`` only; None when the task has no
      subgroups (then ``deployment_risk`` is null)
    """

    problem: Problem
    n_outputs: int  # classes, or regression output dims
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    y_test_noisy: np.ndarray
    x_groups: np.ndarray | None = None
    y_groups: np.ndarray | None = None
    groups: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_test.shape[1:])


@dataclass
class RunMetrics:
    """What the engine measures for one run (replica means unless noted).

    Column meanings are DESIGN.md §2 and ``causal.schema``; ``None`` is a value
    that cannot be measured (a diverged run's post-training quantities, the
    gradient stability of a one-layer network, the log of a non-positive
    estimate); ``*_std`` in ``extra`` are spreads across replicas.
    """

    n_params: int  # trainable parameters of one replica
    gradient_stability: float | None
    sharpness: float | None
    implicit_reg: float | None
    bias_sq: float | None
    variance: float | None
    convergence: float | None
    diverged: bool
    diverged_step: int | None  # first step (1-based) at which a replica diverged
    generalization: float | None
    test_loss: float | None
    test_error: float | None
    gen_gap: float | None
    deployment_risk: float | None
    ece: float | None
    train_loss_initial: float | None
    train_loss_final: float | None
    wall_time_s: float
    extra: dict = field(default_factory=dict)  # per-replica spreads etc.
    # generative runs only (None for supervised ones): sample quality against held-out true samples
    precision: float | None = None
    recall: float | None = None
    coverage: float | None = None
    density: float | None = None
    mode_coverage: float | None = None
    sample_loglik: float | None = None
