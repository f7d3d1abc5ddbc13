import re

import networkx as nx

from causal import BOOK_DAG
from causal.graph import EdgeKind


def test_concept_networkx_export():
    g = BOOK_DAG.to_networkx("concept")
    assert g.number_of_nodes() == 21 and g.number_of_edges() == 27
    for e in BOOK_DAG.edges.values():
        assert g.edges[e.source, e.target]["number"] == e.number
        assert g.edges[e.source, e.target]["expected_sign"] == e.sign.value
    mod = [e for e in BOOK_DAG.edges.values() if e.kind is EdgeKind.MODERATION]
    assert [e.moderates for e in mod] == [2]


def test_column_graph_matches_column_edges():
    g = BOOK_DAG.column_graph()
    edges = BOOK_DAG.column_edges()
    assert g.number_of_edges() == len(edges) == 42
    for ce in edges:
        d = g.edges[ce.treatment, ce.outcome]
        assert d["number"] == ce.number and d["expected_sign"] == ce.expected_sign.value
        assert BOOK_DAG.concept_of(ce.treatment) == ce.edge.split("→")[0]
    assert g.edges["log_lr", "implicit_reg"]["expected_sign"] == "+"
    sub = BOOK_DAG.column_graph(["capacity", "variance", "bias_sq"])
    assert set(sub.edges) == {("capacity", "variance"), ("capacity", "bias_sq")}


def test_gml_round_trip_both_levels():
    for level in ("concept", "column"):
        g = BOOK_DAG.to_networkx(level)
        back = nx.parse_gml(BOOK_DAG.to_gml(level))
        assert set(back.nodes) == set(g.nodes)
        assert set(back.edges) == set(g.edges)
        for u, v, d in g.edges(data=True):
            assert back.edges[u, v]["expected_sign"] == d["expected_sign"]
            assert back.edges[u, v]["number"] == d["number"]
        for n, d in g.nodes(data=True):
            assert back.nodes[n]["kind"] == d["kind"]


def test_dot_export_lists_every_edge_and_node():
    for level in ("concept", "column"):
        g = BOOK_DAG.to_networkx(level)
        dot = BOOK_DAG.to_dot(level)
        found = set(re.findall(r'"([^"]+)" -> "([^"]+)"', dot))
        assert found == set(g.edges)
        nodes = set(re.findall(r'^\s+"([^"]+)" \[shape', dot, flags=re.M))
        assert nodes == set(g.nodes)
    assert 'style=dashed' in BOOK_DAG.to_dot("concept")  # the moderation


def test_design_graph_adds_raw_levers_computed_columns_and_lever_effects():
    from causal.design import COMPUTED, RAW_LEVERS, design_graph, encode_design, intervention_levers

    g = design_graph(BOOK_DAG.column_graph(), list(RAW_LEVERS))
    import networkx as nx

    assert nx.is_directed_acyclic_graph(g)
    mediators = [n for n, k in g.nodes(data="kind") if k in ("mediator", "outcome")]
    for comp in COMPUTED.values():
        for lever in (*comp.intervention, *comp.confounders):
            assert g.has_edge(lever, comp.column), (lever, comp.column)
    for lever in intervention_levers():  # an intervention acts only through the column that stands for it
        assert not any(g.has_edge(lever, m) for m in mediators), lever
    for lever in ("depth", "task", "problem", "noise_dist", "steps"):
        assert all(g.has_edge(lever, m) for m in mediators), lever
    assert all(g.has_edge("capacity", m) for m in mediators)  # book levers: possible causes of every mediator
    assert g.has_edge("task", "problem") and g.has_edge("problem", "loss")
    # the task confounds every book lever / context column (per-family distributions, neutral values)
    book_levers = [n for n, k in BOOK_DAG.column_graph().nodes(data="kind") if k in ("lever", "context")]
    assert book_levers and all(g.has_edge("task", n) for n in book_levers)
    # the encoding: contrasts, log2 and notes for absent levers; epochs stands for steps in schema 2.0
    import pandas as pd

    enc = encode_design(pd.DataFrame({"task": ["teacher", "mnist1d"] * 2, "init_scale": [0.5, 2.0, 1.0, 4.0],
                                      "steps": [100, 200, 100, 200], "epochs": [20.0, 50.0, 20.0, 50.0]}))
    assert enc.columns == {"task": ("task_mnist1d",), "init_scale": ("log2_init_scale",), "epochs": ("log2_epochs",)}
    assert enc.frame["log2_init_scale"].tolist() == [-1.0, 1.0, 0.0, 2.0]
    assert "epochs" in enc.notes["steps"] and "absent" in enc.notes["depth"]
