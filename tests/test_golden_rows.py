"""Golden rows: the engine's measurements on fixed configs must not move under a refactor.

``tests/data/golden_rows.json`` holds what the engine produced (first at commit
86e1d29, before the family registry of issue 11; rewritten for issue 10's CPU
profile, when minibatches became one ``randperm`` per epoch and the class
losses moved to the class-major layout), for

* **engine cases**: toy data (:mod:`runs_generator._toydata`), every
  architecture x normalization x residual x optimizer x loss present today,
  with dropout, augmentation, label smoothing, early stopping, full batch,
  weight decay, a diverging run, and one chunk that mixes optimizers, losses,
  batch sizes and step counts; trained by the batched engine (float32 and
  float64) and the naive engine (float32 and float64);
* **sweep cases**: small-space draws with task/problem/arch/loss/normalization
  fixed, through ``make_task_data`` (teacher and MNIST-1D), the batched engine
  (float32) and ``make_row`` (every schema column but timings and versions).

The comparison is exact for integers and strings. Floats are compared with
``RTOL`` (float32 cases) / ``RTOL64`` (float64): on the machine that wrote the
fixture a refactor that keeps the computation leaves them bit-identical
(``max_rel_diff`` below is 0); the tolerance is for other BLAS builds and thread
counts. Regenerate (only when a change of the numbers is intended, and say so
in the commit) with ``python tests/test_golden_rows.py --write``.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

if __name__ == "__main__":  # run as a script: the package of this checkout, not an installed one
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runs_generator._toydata import toy_config, toy_data
from runs_generator.engine import train_runs

FIXTURE = Path(__file__).parent / "data" / "golden_rows.json"
RTOL, RTOL64 = 1e-4, 1e-9
ATOL = 1e-7
SKIP = {"wall_time_s", "package_version", "torch_version", "extra"}

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def engine_cases() -> tuple[list, list]:
    """Toy configs covering every arch / normalization / residual / optimizer / loss combination in use."""
    c = []
    def add(**kw) -> None:
        kw = {"steps": 12, "n_train": 40, "width": 8, "replicas": 2, **kw}
        c.append(toy_config(run_index=len(c), seed=1000 + len(c), **kw))

    add()  # mlp, none, sgd, cross-entropy
    add(normalization="batch", optimizer="momentum", residual=True, depth=3, label_smoothing=0.1, lr=0.03)
    add(normalization="layer", optimizer="adam", loss="mse", residual=True, depth=3, dropout=0.3, lr=0.01)
    add(optimizer="adam", early_stopping=True, weight_decay=1e-3, batch_size=None, lr=0.01)
    add(problem="regression", loss="mse", normalization="batch", noise=0.1)
    add(problem="regression", loss="l1", optimizer="momentum", normalization="layer", residual=True, depth=3,
        early_stopping=True, lr=0.01)
    add(task="mnist1d", arch="cnn", width=4, augmentation=True)
    add(task="mnist1d", arch="cnn", width=4, normalization="batch", optimizer="adam", residual=True, dropout=0.1,
        lr=0.01)
    add(task="mnist1d", arch="cnn", width=4, normalization="layer", optimizer="momentum", loss="mse", residual=True,
        depth=3, lr=0.02, early_stopping=True, batch_size=16)
    add(task="mnist1d", arch="cnn", width=4, dropout=0.3, augmentation=True, weight_decay=1e-3, batch_size=None)
    add(lr=5.0, init_scale=4.0, depth=3)  # diverges
    for i in range(4):  # one chunk: mixed optimizers, losses, batches, steps, residual flags
        add(optimizer=("sgd", "momentum", "adam", "adam")[i], loss=("cross_entropy", "mse")[i % 2],
            batch_size=(16, 32, None, 8)[i], residual=bool(i % 2), depth=3, n_train=32 + 8 * i,
            init_scale=(0.5, 1.0, 2.0, 1.0)[i], lr=(0.1, 0.03, 0.01, 0.005)[i])
    c[-1] = replace(c[-1], steps=7)
    data = [toy_data(x, n_outputs=3 if x.problem == "classification" else 2, groups=True) for x in c]
    return c, data


def sweep_cases() -> tuple[list, list]:
    """Small-space draws through the real tasks (levers -> tasks -> engine -> table)."""
    from runs_generator.levers import SMALL_SPACE

    fixes = [
        dict(task="teacher", problem="classification", normalization="none", optimizer="sgd"),
        dict(task="teacher", problem="regression", loss="l1", normalization="batch", residual=True),
        dict(task="teacher", problem="regression", loss="mse", normalization="layer", optimizer="adam"),
        dict(task="mnist1d", arch="mlp", loss="cross_entropy", normalization="layer", augmentation=True),
        dict(task="mnist1d", arch="cnn", loss="mse", normalization="batch", residual=True),
        dict(task="mnist1d", arch="cnn", loss="cross_entropy", normalization="none", optimizer="momentum"),
    ]
    configs = []
    for i, fix in enumerate(fixes):
        ov = SMALL_SPACE.overrides(fix={**fix, "steps": 6, "n_train": 64, "width": 8, "depth": 2})
        configs.append(SMALL_SPACE.draw(seed=7, index=i, overrides=ov, replicas=2))
    from runs_generator.tasks import make_task_data

    return configs, [make_task_data(x, sweep_seed=7) for x in configs]


def compute() -> dict[str, dict]:
    """Every golden case: name -> measured values (RunMetrics fields or schema row)."""
    from runs_generator.table import Provenance, make_row

    out: dict[str, dict] = {}
    cfgs, data = engine_cases()
    for engine in ("batched", "naive"):
        for dtype in (torch.float32, torch.float64):
            ms = train_runs(cfgs, data, engine=engine, dtype=dtype)
            for cfg, m in zip(cfgs, ms):
                row = {k: v for k, v in asdict(m).items() if k not in SKIP}
                out[f"engine/{engine}/{str(dtype)[6:]}/{cfg.run_index}"] = row
    cfgs, data = sweep_cases()
    prov = Provenance(engine="batched", device="cpu", package_version="golden", torch_version="golden", sweep_seed=7)
    for engine, dtype in (("batched", torch.float32), ("naive", torch.float64)):
        ms = train_runs(cfgs, data, engine=engine, dtype=dtype)
        for cfg, d, m in zip(cfgs, data, ms):
            row = {k: v for k, v in make_row(cfg, d, m, prov).items() if k not in SKIP}
            out[f"sweep/{engine}/{str(dtype)[6:]}/{cfg.run_index}"] = row
    return out


def _rel(a: float, b: float) -> float:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(b), ATOL / RTOL)


def compare(got: dict[str, dict], want: dict[str, dict]) -> tuple[list[str], float]:
    """Mismatches (as messages) and the largest relative float difference over every case."""
    bad, worst = [], 0.0
    if set(got) != set(want):
        bad.append(f"cases differ: missing {sorted(set(want) - set(got))}, new {sorted(set(got) - set(want))}")
    for case in sorted(set(got) & set(want)):
        g, w = got[case], want[case]
        # a column added since the fixture was written must be null on these cases (families they do not use)
        g = {k: v for k, v in g.items() if k in w or v is not None}
        if set(g) != set(w):
            bad.append(f"{case}: columns differ: {sorted(set(g) ^ set(w))}")
        rtol = RTOL64 if "float64" in case else RTOL
        for col in sorted(set(g) & set(w)):
            a, b = g[col], w[col]
            if isinstance(b, float) and isinstance(a, (int, float)) and a is not None and b is not None:
                r = _rel(float(a), b)
                worst = max(worst, r)
                if not r <= rtol:
                    bad.append(f"{case}: {col} = {a!r}, golden {b!r} (relative difference {r:.2e} > {rtol:g})")
            elif a != b:
                bad.append(f"{case}: {col} = {a!r}, golden {b!r}")
    return bad, worst


@pytest.mark.slow
def test_rows_equal_the_golden_fixture() -> None:
    want = json.loads(FIXTURE.read_text())
    got = json.loads(json.dumps(compute()))  # the same float -> JSON round trip as the fixture
    bad, worst = compare(got, want)
    assert not bad, f"{len(bad)} golden values moved (largest relative difference {worst:.2e}):\n" + "\n".join(bad[:40])


def test_compare_catches_a_moved_value() -> None:
    want = {"c": {"a": 1.0, "b": 2, "s": "x", "n": None}}
    assert compare({"c": {"a": 1.0, "b": 2, "s": "x", "n": None}}, want) == ([], 0.0)
    bad, worst = compare({"c": {"a": 1.001, "b": 2, "s": "x", "n": None}}, want)
    assert len(bad) == 1 and "c: a" in bad[0] and worst == pytest.approx(1e-3)
    assert compare({"c": {"a": 1.0, "b": 3, "s": "x", "n": None}}, want)[0]
    assert compare({"c": {"a": 1.0, "b": 2, "s": "x", "n": 0.5}}, want)[0]
    assert compare({}, want)[0]
    # a column added after the fixture: fine when null, a mismatch when it has a value
    assert compare({"c": {"a": 1.0, "b": 2, "s": "x", "n": None, "new": None}}, want) == ([], 0.0)
    assert compare({"c": {"a": 1.0, "b": 2, "s": "x", "n": None, "new": 0.5}}, want)[0]


if __name__ == "__main__":  # python tests/test_golden_rows.py --write | --check
    torch.set_num_threads(1)
    rows = json.loads(json.dumps(compute()))
    if "--write" in sys.argv:
        FIXTURE.parent.mkdir(exist_ok=True)
        FIXTURE.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(rows)} cases to {FIXTURE}")
    else:
        bad, worst = compare(rows, json.loads(FIXTURE.read_text()))
        print(f"{len(rows)} cases, {len(bad)} mismatches, max relative difference {worst:.3e}")
        print("\n".join(bad[:40]))
