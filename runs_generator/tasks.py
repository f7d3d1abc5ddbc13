"""Task data: K independent training draws and one shared test set per run.

Two task families, both generated in-process (no downloads):

- **teacher** — Gaussian inputs in ``TEACHER_DIM`` dimensions and a random
  two-layer tanh teacher network. The teacher is fixed per ``(sweep seed,
  problem)``: every run of a sweep learns the same function, so runs differ only
  by their levers. Its outputs are scaled to unit standard deviation on the
  majority input distribution, so the regression ``noise`` lever is the noise
  std relative to the signal std (Gaussian, or Laplace with the same std).
  Classification uses ``TEACHER_CLASSES`` classes, the argmax of the teacher's
  (mean-centred) logits, with a fraction ``noise`` of labels replaced by a
  uniformly drawn *other* class.
- **mnist1d** — the book's MNIST-1D signals (40 samples, 10 classes), generated
  procedurally with ``mnist1d.data.make_dataset`` from a fixed pool seed
  (one fixed pool of ``MNIST1D_POOL_SAMPLES``, generated once per process,
  ~6 s): 18,000 training-pool and 2,000 test-pool signals. The K replicas of a
  run get **disjoint** training + validation sets (consecutive slices of one
  per-run permutation of the training pool), so n_train up to 4,000 with K = 4;
  label noise as for the teacher.

Both tasks carry a **minority subgroup** with shifted inputs (teacher: a mean
shift of ``TEACHER_SHIFT`` along a fixed random direction; mnist1d: a constant
offset ``MNIST1D_SHIFT`` added to every sample, a baseline drift):
``MINORITY_TRAIN`` of training and validation examples. Two test sets, both
shared by every run of a sweep with the same task and problem:

- the **in-distribution** test set (``x_test``, ``N_TEST`` examples) has the
  training mixture (``MINORITY_TRAIN`` minority): generalization, test loss,
  test error, bias², variance, ECE and gen_gap are measured on it;
- the **group-balanced** test set (``x_groups``, ``N_TEST`` examples, half
  minority), disjoint from it, is used only for ``deployment_risk``.

The noisy test targets (``y_test_noisy``) are drawn from the run's seed.
"""

from __future__ import annotations

import functools
import random
import warnings

import numpy as np

from causal.errors import ConfigError
from runs_generator.registry import task_family
from runs_generator.spec import RunConfig, TaskData

__all__ = [
    "make_task_data",
    "teacher_data",
    "mnist1d_data",
    "TEACHER_DIM",
    "TEACHER_CLASSES",
    "N_TEST",
    "N_VAL",
    "MINORITY_TRAIN",
    "MINORITY_GROUPS",
]

TEACHER_DIM = 8  # input dimensions of the teacher task (16 capped zero-noise accuracy at 0.82 with 4,000 examples)
TEACHER_HIDDEN = 64  # hidden units of the teacher network
TEACHER_CLASSES = 4  # classes of the teacher classification problem
TEACHER_SHIFT = 2.0  # minority mean shift (in input std units) along one direction
MNIST1D_CLASSES = 10
MNIST1D_SHIFT = 0.75  # minority baseline offset (signals are standardized to std 1)
MNIST1D_POOL_SAMPLES = 20_000  # 18,000 training pool + 2,000 test pool
MNIST1D_TRAIN_SPLIT = 0.9
MNIST1D_POOL_SEED = 42  # the package's own default seed: one fixed dataset
N_TEST = 1000  # examples of each shared test set (in-distribution; group-balanced)
N_VAL = 256  # validation examples per replica (early stopping)
MINORITY_TRAIN = 0.10  # minority share of training and validation data
MINORITY_GROUPS = 0.50  # minority share of the group-balanced test set

_TAG_TEACHER, _TAG_TEST, _TAG_REPLICAS, _TAG_TEST_NOISE, _TAG_GROUPS = 11, 12, 13, 14, 15


# --- teacher -----------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _teacher(sweep_seed: int, problem: str) -> dict[str, np.ndarray]:
    """The sweep's teacher network for ``problem`` (weights, output scaling, shift)."""
    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_TEACHER, problem == "regression"]))
    n_out = TEACHER_CLASSES if problem == "classification" else 1
    w1 = rng.standard_normal((TEACHER_DIM, TEACHER_HIDDEN)) / np.sqrt(TEACHER_DIM)
    b1 = 0.3 * rng.standard_normal(TEACHER_HIDDEN)
    w2 = rng.standard_normal((TEACHER_HIDDEN, n_out)) / np.sqrt(TEACHER_HIDDEN)
    direction = rng.standard_normal(TEACHER_DIM)
    direction /= np.linalg.norm(direction)
    probe = rng.standard_normal((20_000, TEACHER_DIM))
    raw = np.tanh(probe @ w1 + b1) @ w2  # (20000, n_out)
    # centre and scale on the majority distribution: unit signal std, balanced-ish classes
    return {"w1": w1, "b1": b1, "w2": w2, "mean": raw.mean(0), "std": raw.std(0),
            "shift": TEACHER_SHIFT * direction}


def _teacher_out(t: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return (np.tanh(x @ t["w1"] + t["b1"]) @ t["w2"] - t["mean"]) / t["std"]


def _teacher_inputs(rng: np.random.Generator, t: dict[str, np.ndarray], n: int, minority: float):
    group = np.zeros(n, dtype=np.int64)
    group[: int(round(minority * n))] = 1
    rng.shuffle(group)
    x = rng.standard_normal((n, TEACHER_DIM)) + group[:, None] * t["shift"]
    return x, group


@functools.lru_cache(maxsize=16)
def _teacher_test(sweep_seed: int, problem: str, balanced: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The in-distribution test set, or (``balanced``) the group-balanced one."""
    t = _teacher(sweep_seed, problem)
    tag = _TAG_GROUPS if balanced else _TAG_TEST
    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, tag, problem == "regression"]))
    x, group = _teacher_inputs(rng, t, N_TEST, MINORITY_GROUPS if balanced else MINORITY_TRAIN)
    return x, _clean_targets(t, x, problem), group


def _clean_targets(t: dict[str, np.ndarray], x: np.ndarray, problem: str) -> np.ndarray:
    out = _teacher_out(t, x)
    return out.argmax(1).astype(np.int64) if problem == "classification" else out


# --- mnist1d ---------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _mnist1d_pool(seed: int = MNIST1D_POOL_SEED) -> dict[str, np.ndarray]:
    """The MNIST-1D pool, generated procedurally once per process (~6 s)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = MNIST1D_POOL_SAMPLES
    args.train_split = MNIST1D_TRAIN_SPLIT
    args.seed = seed
    # make_dataset reseeds numpy's and Python's global generators: restore them
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


@functools.lru_cache(maxsize=16)
def _mnist1d_test(sweep_seed: int, balanced: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The in-distribution test set (first half of the test pool) or the group-balanced one (second half)."""
    pool = _mnist1d_pool()
    n = min(N_TEST, len(pool["y_test"]) // 2)
    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_TEST, 2]))
    perm = rng.permutation(len(pool["y_test"]))
    idx = perm[n:2 * n] if balanced else perm[:n]
    g_rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_GROUPS if balanced else _TAG_TEST, 3]))
    group = _group_ids(g_rng, n, MINORITY_GROUPS if balanced else MINORITY_TRAIN)
    x = pool["x_test"][idx] + MNIST1D_SHIFT * group[:, None]
    return x, pool["y_test"][idx].astype(np.int64), group


def _group_ids(rng: np.random.Generator, n: int, minority: float) -> np.ndarray:
    group = np.zeros(n, dtype=np.int64)
    group[: int(round(minority * n))] = 1
    rng.shuffle(group)
    return group


# --- noise -------------------------------------------------------------------------
def _label_noise(rng: np.random.Generator, y: np.ndarray, frac: float, n_classes: int) -> np.ndarray:
    """Replace a fraction ``frac`` of labels (exactly round(frac*n)) by a different random class."""
    y = y.copy()
    flip = rng.permutation(len(y))[: int(round(frac * len(y)))]
    y[flip] = (y[flip] + rng.integers(1, n_classes, size=len(flip))) % n_classes
    return y


def _regression_noise(rng: np.random.Generator, shape: tuple[int, ...], std: float, dist: str) -> np.ndarray:
    if dist == "laplace":  # Laplace(b) has std b*sqrt(2)
        return rng.laplace(0.0, std / np.sqrt(2.0), size=shape)
    return rng.normal(0.0, std, size=shape)


def _noisy(rng, y, config: RunConfig, n_classes: int) -> np.ndarray:
    if config.problem == "classification":
        return _label_noise(rng, y, config.noise, n_classes)
    return y + _regression_noise(rng, y.shape, config.noise, config.noise_dist)


# --- the families' data builders (registered in runs_generator.registry.TASKS) --------
def teacher_data(config: RunConfig, *, sweep_seed: int) -> TaskData:
    """The teacher family's data of one run (see :func:`make_task_data`)."""
    k, n = config.replicas, config.n_train
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _TAG_REPLICAS]))
    t = _teacher(sweep_seed, config.problem)
    n_out = TEACHER_CLASSES if config.problem == "classification" else 1
    x_test, y_test, _ = _teacher_test(sweep_seed, config.problem, False)
    x_groups, y_groups, groups = _teacher_test(sweep_seed, config.problem, True)
    xs, ys = [], []
    for _ in range(k):  # one independent draw of train+val per replica
        x, _g = _teacher_inputs(rng, t, n + N_VAL, MINORITY_TRAIN)
        xs.append(x)
        ys.append(_noisy(rng, _clean_targets(t, x, config.problem), config, n_out))
    meta = {"task": "teacher", "input_dim": TEACHER_DIM}
    return _assemble(config, xs, ys, n_out, (x_test, y_test), (x_groups, y_groups, groups), meta)


def mnist1d_data(config: RunConfig, *, sweep_seed: int) -> TaskData:
    """The MNIST-1D family's data of one run (see :func:`make_task_data`)."""
    k, n = config.replicas, config.n_train
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _TAG_REPLICAS]))
    pool = _mnist1d_pool()
    n_out = MNIST1D_CLASSES
    if k * (n + N_VAL) > len(pool["y"]):
        raise ConfigError(
            f"run {config.run_index}: {k} replicas x (n_train={n} + {N_VAL} validation) examples exceed the "
            f"mnist1d training pool of {len(pool['y'])} (replicas get disjoint sets); use n_train <= "
            f"{len(pool['y']) // k - N_VAL} with {k} replicas"
        )
    x_test, y_test, _ = _mnist1d_test(sweep_seed, False)
    x_groups, y_groups, groups = _mnist1d_test(sweep_seed, True)
    perm = rng.permutation(len(pool["y"]))  # replica r takes the r-th slice: disjoint training sets
    xs, ys = [], []
    for r in range(k):
        idx = perm[r * (n + N_VAL) : (r + 1) * (n + N_VAL)]
        g = _group_ids(rng, n + N_VAL, MINORITY_TRAIN)
        xs.append(pool["x"][idx] + MNIST1D_SHIFT * g[:, None])
        ys.append(_noisy(rng, pool["y"][idx].astype(np.int64), config, n_out))
    meta = {"task": "mnist1d", "input_dim": pool["x"].shape[1]}
    return _assemble(config, xs, ys, n_out, (x_test, y_test), (x_groups, y_groups, groups), meta)


def _assemble(config: RunConfig, xs, ys, n_out: int, test, group_set, meta: dict) -> TaskData:
    """K train+validation draws, the shared test sets and the run's noisy test targets -> TaskData."""
    n = config.n_train
    x_test, y_test = test
    x_groups, y_groups, groups = group_set
    noise_rng = np.random.default_rng(np.random.SeedSequence([config.seed, _TAG_TEST_NOISE]))
    x_all = np.stack(xs).astype(np.float32)  # (K, n + n_val, *in)
    y_all = np.stack(ys)
    if config.problem == "classification":
        y_all = y_all.astype(np.int64)  # (K, n + n_val)
        y_test_noisy = _label_noise(noise_rng, y_test, config.noise, n_out)
    else:
        y_all = y_all.astype(np.float32)  # (K, n + n_val, 1)
        y_test_noisy = y_test + _regression_noise(noise_rng, y_test.shape, config.noise, config.noise_dist)
    ycast = np.int64 if config.problem == "classification" else np.float32
    return TaskData(
        problem=config.problem,
        n_outputs=n_out,
        x_train=np.ascontiguousarray(x_all[:, :n]),
        y_train=np.ascontiguousarray(y_all[:, :n]),
        x_val=np.ascontiguousarray(x_all[:, n:]),
        y_val=np.ascontiguousarray(y_all[:, n:]),
        x_test=x_test.astype(np.float32),
        y_test=y_test.astype(ycast),
        y_test_noisy=y_test_noisy.astype(ycast),
        x_groups=x_groups.astype(np.float32) if x_groups is not None else None,
        y_groups=y_groups.astype(ycast) if y_groups is not None else None,
        groups=groups.copy() if groups is not None else None,
        meta=meta,
    )


# --- entry point -------------------------------------------------------------------
def make_task_data(config: RunConfig, *, sweep_seed: int) -> TaskData:
    """Build the data of one run: K training/validation draws and the shared test set.

    Dispatches to the data builder of the run's task family
    (:data:`runs_generator.registry.TASKS`).

    Parameters
    ----------
    config : RunConfig
        The run (task, problem, n_train, noise, noise_dist, replicas, seed).
    sweep_seed : int
        The sweep's seed: fixes the teacher network and the shared test set.

    Returns
    -------
    TaskData
        ``x_train`` (K, n_train, *in) float32; ``y_train`` (K, n_train) int64 or
        (K, n_train, 1) float32; ``x_val``/``y_val`` with ``N_VAL`` examples per
        replica; the in-distribution ``x_test`` (n_test, *in), clean ``y_test``,
        ``y_test_noisy``; the group-balanced ``x_groups``, ``y_groups`` and
        ``groups`` (0 majority, 1 minority). ``in`` is (TEACHER_DIM,) = (8,) for teacher and
        (40,) for mnist1d.

    Examples
    --------
    >>> from runs_generator.levers import DEFAULT_SPACE
    >>> cfg = DEFAULT_SPACE.draw(seed=0, index=0, overrides=DEFAULT_SPACE.overrides(fix={"task": "teacher"}))
    >>> make_task_data(cfg, sweep_seed=0).x_train.shape[:2] == (cfg.replicas, cfg.n_train)
    True
    """
    family = task_family(config.task)
    if config.problem not in family.problems:
        raise ConfigError(f"run {config.run_index}: task {config.task!r} poses {' or '.join(family.problems)} "
                          f"problems; received problem {config.problem!r}")
    return family.make_data(config, sweep_seed=sweep_seed)
