"""udl-causal generator: randomized sweeps of small training runs, one parquet row per run.

``import runs_generator`` is light; torch loads when a sweep runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "generate": "runs_generator.sweep",
    "SweepConfig": "runs_generator.sweep",
    "LeverSpace": "runs_generator.levers",
    "DEFAULT_SPACE": "runs_generator.levers",
    "RunConfig": "runs_generator.spec",
    "train_runs": "runs_generator.engine",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runs_generator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
