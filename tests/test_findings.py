"""FINDINGS.md: reproduced by the command it states, covers all 27 edges, and shows a contradiction when there is one."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from causal import BOOK_DAG, fit_edges, load_runs
from causal.cli import main
from causal.findings import FindingsConfig, compute_findings, render_findings
from causal.simulate_sweep import simulate_sweep

ROOT = Path(__file__).resolve().parents[1]
FINDINGS = ROOT / "FINDINGS.md"
# one row of an edge table: | `t` → `o` | sign | est [lo, hi] (units) | p | n | **verdict** | sensitivity |
ROW = re.compile(r"^\| `(\w+)` → `(\w+)` \| (\S+) \| (\S+) \[(\S+), (\S+)\][^|]*\| (\S+) \| (\d+) \| \*\*(\w+)\*\* \|",
                 re.M)


def _command(text: str) -> str:
    return re.search(r"```\n(.+?)\n```", text).group(1)


def test_findings_md_is_reproduced_by_its_command(tmp_path, monkeypatch):
    text = FINDINGS.read_text()
    command = _command(text)
    assert command.startswith("udl findings data/reference --out FINDINGS.md")
    args = command.split()[1:]
    out = tmp_path / "FINDINGS.md"
    args[args.index("--out") + 1] = str(out)  # the stated command names the file; write it elsewhere
    monkeypatch.chdir(ROOT)
    assert main(args) == 0
    assert out.read_text() == text, "FINDINGS.md is stale: regenerate it with the command at its top"


def test_findings_md_covers_all_27_edges_with_fit_edges_numbers():
    text = FINDINGS.read_text()
    for e in BOOK_DAG.edges.values():
        assert f"### {e.number}. {e.source} → {e.target}" in text
    rows = {(m[0], m[1]): m for m in ROW.findall(text)}
    fx = fit_edges(load_runs(ROOT / "data" / "reference"))
    assert len(fx.summary) + len(fx.skipped) == len(BOOK_DAG.column_edges())
    assert len(rows) == len(fx.summary) > 0
    for r in fx.summary.itertuples():
        _, _, sign, est, lo, hi, p, n, verdict = rows[(r.treatment, r.outcome)]
        assert sign == r.expected_sign and int(n) == r.n and verdict == r.verdict
        for shown, value in ((est, r.estimate), (lo, r.ci_low), (hi, r.ci_high)):
            assert float(shown) == pytest.approx(value, rel=5e-3, abs=1e-6)
        assert float(p) == pytest.approx(r.p_adjusted, rel=5e-2)
    none = "**The default fit contradicts none of the book's signs.**" in text
    assert none == (fx.summary["verdict"] != "contradicts").all()
    # edge 3, the moderation: one row per regime
    for regime in fx.moderation["regime"]:
        assert re.search(rf"^\| {regime} \| ", text, re.M)


@pytest.fixture(scope="module")
def contradicted():
    # the simulator's init_quality → gradient_stability is +0.7; shifted to -0.8 it contradicts the book's +
    sim = simulate_sweep(1200, seed=0, shift={("init_quality", "gradient_stability"): -1.5})
    return render_findings(compute_findings(sim.data, config=FindingsConfig(threshold=0.2), command="X"))


def test_a_contradiction_appears_with_its_diagnostic(contradicted):
    edge = ("init_quality", "gradient_stability")
    rows = {(m[0], m[1]): m for m in ROW.findall(contradicted)}
    assert rows[edge][-1] == "contradicts" and float(rows[edge][3]) < 0
    slot = contradicted.split("## Contradictions")[1].split("## The strongest")[0]
    assert "contradicts none" not in slot
    head = "### Edge 9: `init_quality` → `gradient_stability`\n"
    assert head in slot
    body = slot.split(head)[1].split("###")[0]
    # a planted contradiction is a finding: every setting contradicts, and the fit that keeps the diverged
    # runs (which the simulator's bad inits make likelier) contradicts too
    assert body.strip().startswith("**Finding (same sign under every setting"), body[:200]
    # the simulator flips normalization_batch → sharpness on mnist1d only: a per-task finding, not a pooled one
    flip = slot.split("### Edge 13: `normalization_batch` → `sharpness` (contradicts under: task mnist1d)\n")[1]
    assert flip.split("###")[0].strip().startswith("**Finding within mnist1d only")
    for evidence in ("rows used by the default fit: n = ", "diverged rows excluded", "rows by task: ",
                     "estimate (verdict) per setting: ", "per task (own units): "):
        assert evidence in body
    # the other edges keep the simulator's (book-agreeing) signs: no other default-fit contradiction
    assert [k for k, m in rows.items() if m[-1] == "contradicts"] == [edge]


def test_findings_states_its_command_settings_and_caveats(contradicted):
    assert "```\nX\n```" in contradicted
    assert "alpha=0.05" in contradicted and "|standardized effect| > 0.2" in contradicted
    assert "## Caveats (measured on this table)" in contradicted and "**Diverged runs**" in contradicted


def test_registration_imports_nothing_heavy():
    code = ("import sys, argparse; import causal.findings as m; p = argparse.ArgumentParser(); "
            "m.register(p.add_subparsers()); print(sorted(k for k in ('pandas', 'dowhy', 'matplotlib', 'torch') "
            "if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_stated_command_carries_non_default_options(monkeypatch, tmp_path):
    import causal.findings as findings

    seen = {}
    monkeypatch.setattr(findings, "write_findings",
                        lambda data, out, *, config, command: seen.update(config=config, command=command) or out)
    assert main(["findings", "runs/x", "--out", str(tmp_path / "F.md"), "--alpha", "0.1", "--top-missing", "5"]) == 0
    assert seen["command"] == "udl findings runs/x --out F.md --alpha 0.1 --top-missing 5"
    assert seen["config"] == FindingsConfig(alpha=0.1, top_missing=5)
    assert main(["findings", "runs/x", "--out", "docs/F.md"]) == 0  # a relative path is stated as given
    assert seen["command"] == "udl findings runs/x --out docs/F.md"
    assert main(["findings", "runs/x", "--alpha", "2"]) == 2  # refused with the parameter named


def test_every_stated_mechanism_names_a_test_that_exists():
    """A mechanism line cites the test that reproduces it; a renamed or deleted test must not leave a dead citation."""
    from causal.findings import MECHANISMS

    root = Path(__file__).resolve().parents[1]
    book = {(e.treatment, e.outcome) for e in BOOK_DAG.column_edges()}
    assert MECHANISMS
    for (treatment, outcome), (test, _what) in MECHANISMS.items():
        path, _, name = test.partition("::")
        assert f"def {name}(" in (root / path).read_text(), test
        assert (treatment, outcome) in book, (treatment, outcome)
    text = (root / "FINDINGS.md").read_text()
    contradicted = re.findall(r"### Edge \d+: `(\w+)` → `(\w+)`", text)
    for pair in set(contradicted) & set(MECHANISMS):
        assert MECHANISMS[pair][0] in text
