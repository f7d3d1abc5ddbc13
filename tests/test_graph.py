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
