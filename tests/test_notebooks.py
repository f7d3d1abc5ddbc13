"""Every notebook in notebooks/ runs top to bottom on small data (pyhf style)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb: the analysts' entry point is missing"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # notebooks read UDL_SMALL (fewer bootstrap resamples; a slice of a reference over 600 runs); CI runs
    # them small, and UDL_SMALL=0 in the environment runs them as an analyst would
    monkeypatch.setenv("UDL_SMALL", os.environ.get("UDL_SMALL") or "1")
    # a kernel spec for *this* interpreter, ahead of any user-level "python3" spec
    # that may point at another environment
    spec = tmp_path / "jupyter" / "kernels" / "udl-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "udl-test", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="udl-test", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, errors


def test_notebooks_are_built_from_the_builder():
    """The .ipynb files are outputs of notebooks/_build.py: an edit to one must go through the other."""
    pytest.importorskip("nbformat")
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("_nb_build", NOTEBOOKS[0].parent / "_build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert sorted(f"{name}.ipynb" for name in build.NOTEBOOKS) == [p.name for p in NOTEBOOKS]
    for name, cells in build.NOTEBOOKS.items():
        built = [(c.cell_type, c.source) for c in cells]
        stored = [(c.cell_type, c.source) for c in nbformat.read(NOTEBOOKS[0].parent / f"{name}.ipynb", as_version=4).cells]
        assert built == stored, f"notebooks/{name}.ipynb differs from _build.py: run python notebooks/_build.py"


def test_double_descent_data_matches_its_command():
    """data/double_descent/ holds what the command in its _README.md makes (the table's own lever columns)."""
    import shlex

    from causal import load_runs

    folder = NOTEBOOKS[0].parents[1] / "data" / "double_descent"
    line = next(s.strip() for s in (folder / "_README.md").read_text().splitlines() if s.strip().startswith("udl generate"))
    args = shlex.split(line)
    df = load_runs(folder)
    assert len(df) == int(args[args.index("--runs") + 1])
    assert set(df["sweep_seed"]) == {int(args[args.index("--seed") + 1])}
    fixes = dict(a.split("=", 1) for prev, a in zip(args, args[1:]) if prev == "--fix")
    for lever, value in fixes.items():
        expected = {"false": 0, "true": 1}.get(value, value)
        column = df[lever]
        if column.dtype.kind in "biuf":
            assert (column.astype(float) == float(expected)).all(), (lever, value, column.unique())
        else:
            assert (column == expected).all(), (lever, value, column.unique())
    vary = dict(a.split("=", 1) for prev, a in zip(args, args[1:]) if prev == "--vary")
    assert sorted(df["width"].unique()) == sorted(int(w) for w in vary["width"].split(","))
    assert (df["diverged"] == 0).all()
