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
  (like the published dataset, one fixed dataset; generated once per process).
  Each replica draws its own training and validation subsets (without
  replacement within the replica) from the training pool; label noise as for
  the teacher.

Both tasks carry a **minority subgroup** with shifted inputs so
``deployment_risk`` is defined: ``MINORITY_TRAIN`` of training/validation
examples and ``MINORITY_TEST`` of test examples are shifted (teacher: a mean
shift of ``TEACHER_SHIFT`` along a fixed random direction; mnist1d: a constant
offset ``MNIST1D_SHIFT`` added to every sample, a baseline drift). The test set
is shared by every run of a sweep with the same task and problem; the noisy test
targets (``y_test_noisy``) are drawn from the run's seed.
"""

from __future__ import annotations

import functools
import random
import warnings

import numpy as np

from causal.errors import ConfigError
from runs_generator.spec import RunConfig, TaskData

__all__ = [
    "make_task_data",
    "TEACHER_DIM",
    "TEACHER_CLASSES",
    "N_TEST",
    "N_VAL",
    "MINORITY_TRAIN",
    "MINORITY_TEST",
]

TEACHER_DIM = 16  # input dimensions of the teacher task
TEACHER_HIDDEN = 64  # hidden units of the teacher network
TEACHER_CLASSES = 4  # classes of the teacher classification problem
TEACHER_SHIFT = 2.0  # minority mean shift (in input std units) along one direction
MNIST1D_CLASSES = 10
MNIST1D_SHIFT = 0.75  # minority baseline offset (signals are standardized to std 1)
MNIST1D_POOL_SAMPLES = 6000  # 4800 training pool + 1200 test
MNIST1D_POOL_SEED = 42  # the package's own default seed: one fixed dataset
N_TEST = 1000  # shared test examples per task (mnist1d: min(N_TEST, test pool))
N_VAL = 256  # validation examples per replica (early stopping)
MINORITY_TRAIN = 0.10  # minority share of training and validation data
MINORITY_TEST = 0.50  # minority share of the test set

_TAG_TEACHER, _TAG_TEST, _TAG_REPLICAS, _TAG_TEST_NOISE = 11, 12, 13, 14


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


@functools.lru_cache(maxsize=8)
def _teacher_test(sweep_seed: int, problem: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = _teacher(sweep_seed, problem)
    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_TEST, problem == "regression"]))
    x, group = _teacher_inputs(rng, t, N_TEST, MINORITY_TEST)
    return x, _clean_targets(t, x, problem), group


def _clean_targets(t: dict[str, np.ndarray], x: np.ndarray, problem: str) -> np.ndarray:
    out = _teacher_out(t, x)
    return out.argmax(1).astype(np.int64) if problem == "classification" else out


# --- mnist1d ---------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _mnist1d_pool(seed: int = MNIST1D_POOL_SEED) -> dict[str, np.ndarray]:
    """The MNIST-1D pool, generated procedurally once per process (~3 s)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = MNIST1D_POOL_SAMPLES
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


@functools.lru_cache(maxsize=8)
def _mnist1d_test(sweep_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pool = _mnist1d_pool()
    n = min(N_TEST, len(pool["y_test"]))
    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_TEST, 2]))
    idx = rng.permutation(len(pool["y_test"]))[:n]
    group = np.zeros(n, dtype=np.int64)
    group[: int(round(MINORITY_TEST * n))] = 1
    rng.shuffle(group)
    x = pool["x_test"][idx] + MNIST1D_SHIFT * group[:, None]
    return x, pool["y_test"][idx].astype(np.int64), group


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


# --- entry point -------------------------------------------------------------------
def make_task_data(config: RunConfig, *, sweep_seed: int) -> TaskData:
    """Build the data of one run: K training/validation draws and the shared test set.

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
        replica; ``x_test`` (n_test, *in), clean ``y_test``, ``y_test_noisy`` and
        ``group_test`` (0 majority, 1 minority). ``in`` is (16,) for teacher and
        (40,) for mnist1d.

    Examples
    --------
    >>> from runs_generator.levers import DEFAULT_SPACE
    >>> cfg = DEFAULT_SPACE.draw(seed=0, index=0, overrides=DEFAULT_SPACE.overrides(fix={"task": "teacher"}))
    >>> make_task_data(cfg, sweep_seed=0).x_train.shape[:2] == (cfg.replicas, cfg.n_train)
    True
    """
    k, n = config.replicas, config.n_train
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _TAG_REPLICAS]))
    noise_rng = np.random.default_rng(np.random.SeedSequence([config.seed, _TAG_TEST_NOISE]))
    if config.task == "teacher":
        t = _teacher(sweep_seed, config.problem)
        n_out = TEACHER_CLASSES if config.problem == "classification" else 1
        x_test, y_test, group = _teacher_test(sweep_seed, config.problem)
        xs, ys = [], []
        for _ in range(k):  # one independent draw of train+val per replica
            x, _g = _teacher_inputs(rng, t, n + N_VAL, MINORITY_TRAIN)
            xs.append(x)
            ys.append(_noisy(rng, _clean_targets(t, x, config.problem), config, n_out))
        meta = {"task": "teacher", "input_dim": TEACHER_DIM}
    elif config.task == "mnist1d":
        if config.problem != "classification":
            raise ConfigError(f"run {config.run_index}: task 'mnist1d' is classification; received problem "
                              f"{config.problem!r}")
        pool = _mnist1d_pool()
        n_out = MNIST1D_CLASSES
        if n + N_VAL > len(pool["y"]):
            raise ConfigError(
                f"run {config.run_index}: n_train={n} plus {N_VAL} validation examples exceeds the mnist1d "
                f"training pool of {len(pool['y'])}; use n_train <= {len(pool['y']) - N_VAL}"
            )
        x_test, y_test, group = _mnist1d_test(sweep_seed)
        xs, ys = [], []
        for _ in range(k):
            idx = rng.choice(len(pool["y"]), size=n + N_VAL, replace=False)
            g = np.zeros(n + N_VAL, dtype=np.int64)
            g[: int(round(MINORITY_TRAIN * (n + N_VAL)))] = 1
            rng.shuffle(g)
            xs.append(pool["x"][idx] + MNIST1D_SHIFT * g[:, None])
            ys.append(_noisy(rng, pool["y"][idx].astype(np.int64), config, n_out))
        meta = {"task": "mnist1d", "input_dim": pool["x"].shape[1]}
    else:
        raise ConfigError(f"run {config.run_index}: unknown task {config.task!r}; expected 'teacher' or 'mnist1d'")

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
        group_test=group.copy(),
        meta=meta,
    )
