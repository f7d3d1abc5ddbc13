import subprocess
import sys

import networkx as nx
import pytest

from causal import BOOK_DAG, GraphError
from causal.graph import CausalGraph, Concept, Edge, NodeKind, Sign


def test_book_dag_has_design_counts():
    assert len(BOOK_DAG.concepts) == 21
    assert len(BOOK_DAG.edges) == 27
    assert sorted(BOOK_DAG.edges) == list(range(1, 28))


def test_column_graph_is_acyclic_and_excludes_derived():
    g = BOOK_DAG.column_graph()
    assert nx.is_directed_acyclic_graph(g)
    assert "overparam" not in g
    assert g.has_edge("init_quality", "gradient_stability")
    assert g.edges["log_batch", "implicit_reg"]["expected_sign"] == "-"


def test_unknown_concept_in_edge_is_refused():
    c = Concept("a", NodeKind.LEVER, ("a",), "", "1")
    with pytest.raises(GraphError, match="unknown concept 'b'"):
        CausalGraph([c], [Edge(1, "a", "b", Sign.POSITIVE, "1")])


def test_import_causal_does_not_import_torch():
    code = "import sys, causal; causal.BOOK_DAG; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_functions_are_functions_even_after_their_modules_load():
    # a submodule named like a public function would shadow it once imported
    import importlib

    import causal

    for name in ("load_runs", "fit_edges", "mediation", "falsify", "check_signs"):
        getattr(causal, name)
    for mod in ("causal.load", "causal.edges", "causal.mediate", "causal.graph_tests", "causal.stability"):
        importlib.import_module(mod)
    for name in ("load_runs", "fit_edges", "mediation", "falsify", "check_signs"):
        assert callable(getattr(causal, name)) and not isinstance(getattr(causal, name), type(causal)), name


def test_cli_parser_builds_without_heavy_imports():
    code = (
        "import sys; from causal.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('torch', 'dowhy', 'matplotlib.pyplot', 'statsmodels.api') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
