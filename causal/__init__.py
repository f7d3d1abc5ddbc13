"""udl-causal analysis: the book's causal graph fitted to a runs table with DoWhy.

Imports without torch. Heavy modules (DoWhy, matplotlib) load on first use.

Public names (DESIGN.md §7): ``BOOK_DAG``, ``load_runs``, ``fit_edges``,
``mediation``, ``falsify``, ``check_signs``; also ``total_effects``.
"""

from __future__ import annotations

import importlib
from typing import Any

from causal.errors import BaselineError, ConfigError, GraphError, SchemaError, UdlError
from causal.graph import BOOK_DAG, CausalGraph
from causal.schema import SCHEMA_VERSION

__version__ = "0.1.0"

# name -> module that defines it; imported lazily so `import causal` stays light
_LAZY = {
    "load_runs": "causal.load",
    "fit_edges": "causal.edges",
    "EdgeEffects": "causal.edges",
    "mediation": "causal.mediate",
    "MediationResult": "causal.mediate",
    "mediation_paths": "causal.mediate",
    "total_effects": "causal.totals",
    "TotalEffects": "causal.totals",
    "MediationTable": "causal.mediate",
    "default_paths": "causal.mediate",
    "falsify": "causal.graph_tests",
    "FalsifyResult": "causal.graph_tests",
    "check_signs": "causal.stability",
    "SignCheck": "causal.stability",
    "write_baseline": "causal.stability",
    "read_baseline": "causal.stability",
    "bootstrap_sign_stability": "causal.stability",
    "simulate_linear_scm": "causal.simulate",
    "simulate_sweep": "causal.simulate_sweep",
    "compare": "causal.compare", "Comparison": "causal.compare",
    "measure_scores": "causal.scores", "MeasureScores": "causal.scores",
}

__all__ = [
    "BOOK_DAG",
    "CausalGraph",
    "SCHEMA_VERSION",
    "UdlError",
    "SchemaError",
    "ConfigError",
    "GraphError",
    "BaselineError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'causal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
