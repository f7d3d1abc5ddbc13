"""Every family of the all-family space trains on CUDA and gives the row it gives on the CPU.

Skipped without a CUDA device (CI has none; a lent GPU runs it, see benchmarks/gpu_session.sh). Each
(task, architecture) pair of space 'all' trains one short run in float64 on both devices with the
same noise streams (counter-based), so the two rows may differ only by summation order; on CUDA the
MLP and CNN steps are replayed from CUDA graphs (padding, which needs runs of several widths, is
tested in tests/test_engine.py).
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

import pytest
import torch

from runs_generator.spec import RunMetrics

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
              pytest.mark.usefixtures("torch_one_thread")]

#: every float metric of a row (supervised and generative)
FLOATS = [f.name for f in fields(RunMetrics) if f.name not in ("n_params", "diverged", "diverged_step",
                                                                "wall_time_s", "extra")]


def _pairs() -> list[tuple[str, str]]:
    from runs_generator.levers import get_space

    space, seen = get_space("all"), {}
    for i in range(2000):
        c = space.draw(11, i)
        seen.setdefault((c.task, c.arch), i)
    return sorted(seen.items())


@pytest.mark.parametrize("pair,index", _pairs(), ids=lambda v: "-".join(v) if isinstance(v, tuple) else str(v))
def test_a_family_trains_on_cuda_to_the_cpu_row(pair, index, monkeypatch) -> None:
    from runs_generator import _noise
    from runs_generator.engine import train_runs
    from runs_generator.levers import get_space
    from runs_generator.tasks import make_task_data

    monkeypatch.setattr(_noise, "NOISE_KIND", "counter")
    c = get_space("all").draw(11, index)
    c = replace(c, steps=min(c.steps, 40), n_train=min(c.n_train, 256), pretrained=c.pretrained)
    data = make_task_data(c, sweep_seed=11)
    cpu = train_runs([c], [data], device="cpu", dtype=torch.float64)[0]
    gpu = train_runs([c], [data], device="cuda", dtype=torch.float64)[0]
    assert cpu.n_params == gpu.n_params
    _assert_close(cpu, gpu, pair, rel=1e-5, abs=1e-7)


def _assert_close(a: RunMetrics, b: RunMetrics, where, rel: float, abs: float) -> None:
    """Same divergence and every float metric within tolerance (None and NaN only where both are)."""
    assert a.diverged == b.diverged, where
    for name in FLOATS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
            assert (x is None or math.isnan(x)) and (y is None or math.isnan(y)), (where, name, x, y)
            continue
        assert y == pytest.approx(x, rel=rel, abs=abs), (where, name, x, y)


def test_chunks_on_concurrent_cuda_streams_train_as_one_after_another(monkeypatch) -> None:
    """Chunks interleaved on three CUDA streams (each with its captured step) give the sequential rows."""
    from runs_generator import _trainer
    from runs_generator._toydata import mixed_width_runs
    from runs_generator.engine import train_runs

    cfgs, data = mixed_width_runs()
    cfgs = [replace(c, steps=10 + 5 * (i % 3)) for i, c in enumerate(cfgs)]
    one = train_runs(cfgs, data, device="cuda", dtype=torch.float64, chunk_size=8, concurrent=1)
    mixed = train_runs(cfgs, data, device="cuda", dtype=torch.float64, chunk_size=8, concurrent=3)
    assert not _trainer._CAPTURE_FAILED
    for i, (a, b) in enumerate(zip(one, mixed)):
        _assert_close(a, b, i, rel=1e-9, abs=1e-12)
