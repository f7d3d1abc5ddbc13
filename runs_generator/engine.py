"""The training engine: train runs (K replicas each) and measure them.

Group key (:func:`group_key`): runs train as one batched computation when they
share ``(task, problem, arch, depth, normalization, batch bucket, width)`` and,
inside :func:`train_runs`, the data's input shape and output count — everything
that fixes tensor shapes. The batch bucket is the power of two at or above the
effective batch size, except that small models (batch x width x hidden work
below :data:`SMALL_WORK`) share one bucket: their steps cost launch overhead,
not FLOPs, so padding a small batch up to a larger one is nearly free. On CUDA
(``pad_widths``) small MLP and CNN runs (:data:`CUDA_SMALL_WORK`) of every width
share a group too, padded to the widest (:func:`runs_generator.models.padded_spec`),
and every group's chunks hold budgets within :data:`STEPS_RATIO` of each other:
on a GPU a small model's step costs its kernel launches, not its FLOPs, and one
group of several widths launches the kernels of one.

Per-model tensors (shape (R,), R = runs x replicas in a chunk), so a group with
mixed levers trains as one computation: ``lr``, ``weight_decay``,
``dropout``, ``label_smoothing``, ``residual`` (0/1), ``momentum`` (0 or 0.9),
``is_adam``, ``loss_code`` (cross-entropy / mse / l1), ``augment``,
``early_stop``, plus per-model ``steps`` (an ``active`` mask stops finished
models), batch size (a row mask over the padded minibatch), ``n_train`` (index
sampling and a row mask over the padded training set) and init scale (applied
at initialization). Inside a group runs are sorted by (steps, batch) before
being cut into chunks of ``chunk_size`` models (by default sized per group so
a chunk's activations stay in cache, :func:`auto_chunk_size`), so chunks waste little; within
a chunk, Adam runs come last so the optimizer updates contiguous row blocks.
On CPU, :func:`train_runs` first tunes glibc malloc (see :func:`_tune_malloc`).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
from collections import defaultdict, deque
from typing import Iterator, Literal, Sequence

import torch

from runs_generator.registry import _load, arch_entry, loss_entry, task_family
from runs_generator.spec import RunConfig, RunMetrics, TaskData
from causal.errors import ConfigError

__all__ = ["train_runs", "group_key", "cut_chunks", "pads_width", "resolve_device", "auto_chunk_size", "SMALL_WORK",
           "CUDA_SMALL_WORK", "STEPS_RATIO", "ACTIVATION_BUDGET", "MAX_CHUNK", "CUDA_ACTIVATION_BUDGET",
           "CUDA_MAX_CHUNK"]

SMALL_WORK = 2**20  # multiply-adds per model step below which batch sizes share a bucket
#: the same on CUDA (``pad_widths``), where also only runs this small share a group across widths. Chosen
#: on the large space's 1,024-run benchmark plan (benchmarks/plan_cost.py; benchmarks/RESULTS.md, "GPU
#: session"): at 2**22 the padded plan asks for about the training FLOPs of exact shapes (511 vs 497 TFLOP)
#: in 18% fewer chunk-steps (1.02 M vs 1.25 M); at 2**24 it asked 2.4x the FLOPs of exact shapes, and
#: padding every run (the version that ran on an H200, where no 32-run shard finished in 60 s) 19x
CUDA_SMALL_WORK = 2**22
#: with ``pad_widths`` (the CUDA grouping), a chunk's longest budget is at most this many times its shortest,
#: in every group (padded or not)
STEPS_RATIO = 2
#: hidden-activation elements (models x batch x positions x width) per chunk when
#: ``chunk_size`` is automatic: keeps a chunk's activations in cache (CNN chunks of
#: 32 models at width 16 and batch 128 spilled to DRAM and ran ~1.5x slower per run)
ACTIVATION_BUDGET = 2**19
MAX_CHUNK = 64  # models per automatic chunk
#: on a GPU the limit is memory, not cache, and larger chunks launch fewer kernels:
#: a group of a shard usually becomes one chunk
CUDA_ACTIVATION_BUDGET = 2**24
CUDA_MAX_CHUNK = 4096
#: chunks whose training steps interleave on CUDA, each on its own stream, unless ``UDL_CUDA_STREAMS``
#: says otherwise: a chunk of a mixed sweep holds a few runs, and one chunk's small kernels leave the
#: GPU mostly idle. On an H200 16 streams trained a 16-run shard of the large space in 12.7 s instead of
#: 19.3 s (MNIST-1D CNN) and 4.2 s instead of 4.9 s (teacher MLP), with the same rows
#: (benchmarks/RESULTS.md, "GPU session 2"); a shard gains only as far as it holds chunks to interleave.
CUDA_STREAMS = 16


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``'auto'`` (CUDA when available), ``'cpu'`` or ``'cuda'`` as a torch.device.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={device!r} was requested but torch {torch.__version__} sees no CUDA device; "
                "use --device cpu or --device auto, or install a CUDA build of torch on a GPU machine"
            )
        return torch.device(device)
    raise ConfigError(f"device must be one of 'auto', 'cpu', 'cuda'; got {device!r}")


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Keep freed tensor memory in glibc's heap (once per process, Linux CPU only).

    A batched step allocates and frees activation-sized tensors (~1 MB) dozens
    of times; by default glibc returns them to the OS (mmap / trim) and every
    reuse page-faults, which made small steps ~1.8x slower. This is what
    ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296`` does,
    applied at run time so worker processes get it without environment setup.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    libc.mallopt(m_mmap_threshold, 32 * 2**20)
    libc.mallopt(m_trim_threshold, 2**31 - 1)


#: multiply-adds per example and hidden unit that the input and head layers add to the hidden->hidden
#: ones, in the bucket's work estimate (a rough constant: the bucket only decides which batch sizes share a group)
IO_WORK = 64


def _work(config: RunConfig) -> int:
    """Multiply-adds of one model step, roughly: batch x hidden positions x width x (width x (depth - 1) + IO_WORK)."""
    b = max(1, config.effective_batch)
    work = b * config.width * (config.width * max(0, config.depth - 1) + IO_WORK)
    return work * arch_entry(config.arch).positions  # hidden positions per example (feature-map length)


def _batch_bucket(config: RunConfig, small: int = SMALL_WORK) -> int:
    b = max(1, config.effective_batch)
    if _work(config) <= small:
        return 0
    return int(math.ceil(math.log2(b)))


def auto_chunk_size(
    configs: Sequence[RunConfig], data: Sequence[TaskData], device: torch.device = torch.device("cpu")
) -> int:
    """Models per chunk for one group: the activation budget over one model's activations.

    One model's hidden activation is (padded batch) x (positions: 1 for an MLP,
    the feature-map length for a CNN) x width elements. On CPU the budget is
    :data:`ACTIVATION_BUDGET` and the result is clamped to [1, :data:`MAX_CHUNK`];
    on CUDA :data:`CUDA_ACTIVATION_BUDGET` and :data:`CUDA_MAX_CHUNK`. A run's
    replicas always share a chunk, whatever the size.
    """
    from runs_generator._modelset import arch_spec

    spec = arch_spec(configs[0], data[0])
    batch = max(c.effective_batch for c in configs)
    width = max(int(c.width) for c in configs)  # a padded group's widest run
    per_model = batch * spec.length * max(width, 1)
    cuda = torch.device(device).type == "cuda"
    budget, cap = (CUDA_ACTIVATION_BUDGET, CUDA_MAX_CHUNK) if cuda else (ACTIVATION_BUDGET, MAX_CHUNK)
    return int(min(cap, max(1, budget // per_model)))


def pads_width(config: RunConfig) -> bool:
    """Whether runs of ``config``'s architecture may share a computation padded to a common width."""
    return bool(getattr(arch_entry(config.arch).impl(), "pads_width", False))


def group_key(config: RunConfig, pad: bool = False) -> tuple:
    """The shape key of runs that can train as one batched computation (sortable).

    Width comes last, so that sorting by the key (the sweep's shard plan) puts runs that differ only in
    width next to each other. ``pad``: the grouping of the CUDA path, where small models are
    launch-bound: small runs (a model step of at most :data:`CUDA_SMALL_WORK` multiply-adds) of an
    architecture that pads widths (:func:`runs_generator.models.padded_spec`) share a key whatever their
    width (it becomes 0) and batch size, larger ones keep their width and their batch's power-of-two
    bucket. Padding a large run would multiply its FLOPs: on the large space's 1,024-run benchmark plan,
    padding every run to its group's widest width and batch (and budget) asked for 9,224 training TFLOP
    where the runs need 309 (benchmarks/plan_cost.py).
    """
    small = pad and pads_width(config) and _work(config) <= CUDA_SMALL_WORK
    width = 0 if small else int(config.width)
    return (
        config.task,
        config.problem,
        config.arch,
        int(config.depth),
        config.normalization,
        _batch_bucket(config, CUDA_SMALL_WORK if pad else SMALL_WORK),
        width,
    )


def train_runs(
    configs: Sequence[RunConfig],
    data: Sequence[TaskData],
    *,
    engine: Literal["batched", "naive"] = "batched",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    chunk_size: int | None = None,
    pad_widths: bool | None = None,
    concurrent: int | None = None,
) -> list[RunMetrics]:
    """Train every run's K replicas and measure them; results in the order of ``configs``.

    Parameters
    ----------
    configs, data : one RunConfig and its TaskData per run.
    engine : 'batched' (stacked models, default) or 'naive' (one module per replica).
    device : 'auto', 'cpu', 'cuda' or a torch.device.
    dtype : parameter and data dtype (float64 for equivalence tests).
    chunk_size : models (runs x replicas) per batched computation; a run is never
        split. None (default) sizes each group's chunks by :func:`auto_chunk_size`.
    pad_widths : let runs that differ only in width share one computation, padded to the widest
        (:func:`runs_generator.models.padded_spec`; MLP and CNN). None (default): on CUDA only, where
        small models are launch-bound and larger groups are nearly free; on a CPU padding costs FLOPs.
        A run's metrics are those of the run alone either way (to float rounding).
    concurrent : chunks whose training steps interleave, on CUDA each on its own stream. None (default):
        ``UDL_CUDA_STREAMS`` from the environment on CUDA (default :data:`CUDA_STREAMS`), 1 on a CPU.
        On CUDA another chunk starts only while :data:`CUDA_MEMORY_HEADROOM` of the device's memory is
        free. A run's metrics do not depend on it.
    """
    from runs_generator.naive import train_run_naive

    if len(configs) != len(data):
        raise ConfigError(f"train_runs needs one TaskData per RunConfig; got {len(configs)} configs and {len(data)} data")
    if engine not in ("batched", "naive"):
        raise ConfigError(f"engine must be 'batched' or 'naive'; got {engine!r}")
    if chunk_size is not None and chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1; got {chunk_size}")
    own: dict[str, list[int]] = defaultdict(list)  # families with their own trainer (TaskFamily.trainer)
    for i, c in enumerate(configs):
        if task_family(c.task).trainer:
            own[task_family(c.task).trainer].append(i)
    if own:
        results: list[RunMetrics | None] = [None] * len(configs)
        for path, idx in own.items():
            out = _load(path)([configs[i] for i in idx], [data[i] for i in idx], engine=engine,
                              device=resolve_device(device), dtype=dtype, chunk_size=chunk_size)
            for i, m in zip(idx, out):
                results[i] = m
        rest = [i for i, m in enumerate(results) if m is None]
        if rest:
            out = train_runs([configs[i] for i in rest], [data[i] for i in rest], engine=engine, device=device,
                             dtype=dtype, chunk_size=chunk_size, pad_widths=pad_widths, concurrent=concurrent)
            for i, m in zip(rest, out):
                results[i] = m
        return results  # type: ignore[return-value]
    for c, d in zip(configs, data):
        _check(c, d)
    dev = resolve_device(device)
    if dev.type == "cpu":
        _tune_malloc()
    from runs_generator.transfer import source_states

    # pretrained runs: the source models their replicas start from (cached; trained here when missing)
    states = source_states(configs, data, dev, dtype)
    if engine == "naive":
        return [train_run_naive(c, d, dev, dtype, init_state=states.get(i)) for i, (c, d) in enumerate(zip(configs, data))]
    if pad_widths is None:
        pad_widths = dev.type == "cuda"
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, (c, d) in enumerate(zip(configs, data)):
        shape = (tuple(d.input_shape), int(d.n_outputs), d.problem)
        groups[(group_key(c, pad=pad_widths), shape)].append(i)
    results: list[RunMetrics | None] = [None] * len(configs)
    chunks: list[list[int]] = []
    for members in groups.values():
        size = chunk_size or auto_chunk_size([configs[i] for i in members], [data[i] for i in members], dev)
        chunks += cut_chunks(members, configs, size, pad_widths)
    if concurrent is None:
        from runs_generator._data import env_int

        concurrent = env_int("UDL_CUDA_STREAMS", CUDA_STREAMS) if dev.type == "cuda" else 1
    if concurrent > 1:  # longest first: the last chunks to start are short, so no long one runs alone at the end
        chunks.sort(key=lambda ch: -max(configs[j].steps for j in ch))
    for chunk, metrics in _train_chunks(chunks, configs, data, states, dev, dtype, max(1, concurrent)):
        for j, m in zip(chunk, metrics):
            results[j] = m
    return results  # type: ignore[return-value]


def cut_chunks(members: list[int], configs: Sequence[RunConfig], size: int, pad: bool) -> list[list[int]]:
    """One group's runs (indices into ``configs``) cut into the chunks that train as one computation.

    Runs are sorted by (budget, batch, n_train, index) and cut into chunks of at most ``size`` models (a
    run is never split). With ``pad`` (the CUDA grouping) a chunk also holds budgets within
    :data:`STEPS_RATIO` of each other: it trains for its longest budget, and a finished model computes
    until its chunk ends. Within a chunk the Adam runs come last (contiguous optimizer blocks, see
    :class:`runs_generator._trainer.FlatOptimizer`).
    """
    order = sorted(members, key=lambda i: (configs[i].steps, configs[i].effective_batch, configs[i].n_train, i))
    chunks: list[list[int]] = []
    chunk: list[int] = []
    n_models = 0
    for i in order:
        fits = n_models + configs[i].replicas <= size and (
            not pad or configs[i].steps <= STEPS_RATIO * configs[chunk[0]].steps if chunk else True)
        if chunk and not fits:
            chunks.append(chunk)
            chunk, n_models = [], 0
        chunk.append(i)
        n_models += configs[i].replicas
    if chunk:
        chunks.append(chunk)
    for c in chunks:
        c.sort(key=lambda j: configs[j].optimizer == "adam")  # stable: budget order within each block
    return chunks


def _train_chunks(chunks: list[list[int]], configs, data, states, dev: torch.device, dtype: torch.dtype,
                  concurrent: int) -> Iterator[tuple[list[int], list[RunMetrics]]]:
    """Train each chunk (run indices) and yield ``(chunk, metrics)``, ``concurrent`` chunks at a time.

    With ``concurrent`` > 1 the chunks' training steps interleave on this thread
    (:func:`runs_generator._trainer.train_steps`), on CUDA each chunk on one of ``concurrent`` streams,
    so that the small kernels of several chunks can run at once; a chunk's computation is the same
    either way (every chunk owns its tensors and random streams).
    """
    from runs_generator._modelset import build_model_set
    from runs_generator._trainer import run_steps, train_steps

    def start(chunk: list[int]):
        ms = build_model_set([configs[j] for j in chunk], [data[j] for j in chunk], dev, dtype,
                             init_states=[states.get(j) for j in chunk])
        return train_steps(ms)

    if concurrent <= 1:
        for chunk in chunks:
            yield chunk, run_steps(start(chunk))
        return
    cuda = dev.type == "cuda"
    free = [torch.cuda.Stream(device=dev) if cuda else None for _ in range(concurrent)]  # reused: each has its own cache
    pending, live = deque(chunks), deque()
    while pending or live:
        # another chunk starts only while the device has room for it (or nothing else is running); a new
        # chunk goes first, so that it takes its first step before the next check, which then sees its tensors
        if pending and free and (not live or _device_room(dev)):
            stream = free.pop()
            with _on(stream):
                chunk = pending.popleft()
                live.appendleft((chunk, start(chunk), stream))
        chunk, steps, stream = live.popleft()
        with _on(stream):
            try:
                next(steps)
            except StopIteration as done:
                free.append(stream)
                yield chunk, done.value
                continue
        live.append((chunk, steps, stream))


#: the share of the device's memory that must be free (or cached by torch and unused) before another
#: interleaved chunk starts: chunks of a sweep on a small GPU then run fewer at a time instead of failing
CUDA_MEMORY_HEADROOM = 0.2


def _device_room(dev: torch.device) -> bool:
    """Whether ``dev`` has room for one more interleaved chunk (always on a CPU)."""
    if dev.type != "cuda":
        return True
    free_b, total_b = torch.cuda.mem_get_info(dev)
    cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
    return free_b + cached >= CUDA_MEMORY_HEADROOM * total_b


def _on(stream):
    """``torch.cuda.stream(stream)``, or nothing for None (CPU)."""
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()


def _check(c: RunConfig, d: TaskData) -> None:
    loss_entry(c.loss).check(d.problem, where=f"run {c.run_index} (task {c.task!r}): ")
    if d.x_train.shape[0] < c.replicas:
        raise ConfigError(
            f"run {c.run_index}: replicas={c.replicas} but TaskData.x_train holds {d.x_train.shape[0]} draws; "
            "build one training draw per replica"
        )
