"""Builds notebooks/atlas.ipynb from the cells below (run: python notebooks/_build.py).

Kept as code so that the notebook's source is reviewable in diffs; the test
suite executes the built notebook.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# A causal atlas of deep-learning design choices\n\n"
        "This notebook reads the shipped reference sweep (`data/reference/`: randomized small training "
        "runs, one row per run) and fits the causal graph of *Understanding Deep Learning* to it: "
        "an effect with a confidence interval for every book edge, mediation paths, tests of the graph "
        "itself, and a sign check against the shipped baseline.\n\n"
        "Set the environment variable `UDL_SMALL=1` to use a 600-run slice (the test suite does)."
    ),
    new_code_cell(
        "import os\n"
        "from pathlib import Path\n\n"
        "import matplotlib.pyplot as plt\n"
        "import pandas as pd\n\n"
        "import causal\n"
        "from causal import BOOK_DAG\n\n"
        "ROOT = Path.cwd().parent if Path.cwd().name == 'notebooks' else Path.cwd()\n"
        "runs = causal.load_runs(ROOT / 'data' / 'reference')\n"
        "if os.environ.get('UDL_SMALL'):\n"
        "    runs = runs.sample(n=min(600, len(runs)), random_state=0)\n"
        "print(f'{len(runs)} runs, {runs.shape[1]} columns')\n"
        "runs[['task', 'arch', 'width', 'depth', 'optimizer', 'lr', 'init_scale', 'gradient_stability', "
        "'sharpness', 'variance', 'generalization']].head()"
    ),
    new_markdown_cell(
        "## The book's graph\n\n21 concepts and 27 edges (DESIGN.md §2), each with the sign the book's "
        "argument implies. At the column level, categorical levers become 0/1 contrasts "
        "(`optimizer_adam` vs SGD) and the derived `overparam` is left out of the graph: it moderates edge 2."
    ),
    new_code_cell(
        "edges = pd.DataFrame([\n"
        "    {'number': e.number, 'edge': e.label, 'sign': e.sign.value, 'chapter': e.chapter}\n"
        "    for e in BOOK_DAG.edges.values()\n"
        "])\n"
        "edges"
    ),
    new_markdown_cell(
        "## Direct effect of every book edge\n\n"
        "Identification by DoWhy from the column graph (backdoor), estimation by linear regression with "
        "robust standard errors; p-values Holm-corrected across edges. `verdict` says whether the data "
        "supports the book's sign, contradicts it, or cannot tell."
    ),
    new_code_cell(
        "effects = causal.fit_edges(runs)\n"
        "effects"
    ),
    new_code_cell(
        "fig, ax = plt.subplots(figsize=(8, 11))\n"
        "effects.plot_forest(ax=ax)\n"
        "fig.tight_layout()"
    ),
    new_code_cell(
        "fig, ax = plt.subplots(figsize=(13, 8))\n"
        "effects.plot_graph(ax=ax)\n"
        "fig.tight_layout()"
    ),
    new_markdown_cell(
        "### The design versus the book's graph alone\n\n"
        "The default fit identifies every edge on the book's graph plus the experiment's design: raw levers "
        "(task, depth, loss, the signed init scale, ...) are randomized roots, parents of the columns computed "
        "from them and possible causes of every mediator. `adjust='book'` uses the book's graph alone, which "
        "leaves those paths open; compare the two fits."
    ),
    new_code_cell(
        "effects_book = causal.fit_edges(runs, adjust='book')\n"
        "fig, ax = plt.subplots(figsize=(8, 11))\n"
        "causal.edges.plot_forest([effects, effects_book], ax=ax)\n"
        "fig.tight_layout()"
    ),
    new_markdown_cell(
        "### Edge 3: over-parameterization moderates capacity → variance\n\n"
        "The book expects more capacity to raise variance below the interpolation threshold and lower "
        "it above (double descent)."
    ),
    new_code_cell("effects.moderation"),
    new_markdown_cell(
        "## Mediation: how levers reach generalization\n\n"
        "Path-specific effects in the fitted linear SEM (product of path coefficients) with bootstrap CIs, "
        "for every path from a lever through the book's mediators to `generalization`."
    ),
    new_code_cell(
        "paths = causal.mediation_paths(runs, n_boot=200)\n"
        "paths.summary.sort_values('p_value').head(10)"
    ),
    new_code_cell(
        "one = causal.mediation(runs, 'init_quality -> gradient_stability -> convergence -> generalization', n_boot=200)\n"
        "one"
    ),
    new_markdown_cell(
        "## Is the graph consistent with the data?\n\n"
        "Each implied conditional independence (local Markov condition) is tested with a Fisher-z "
        "partial-correlation test, Holm-corrected; the search for missing edges lists strong lever → "
        "mediator/outcome effects the book does not draw."
    ),
    new_code_cell(
        "tests = causal.falsify(runs)\n"
        "print(f'{len(tests.summary)} implications tested, {len(tests.violations)} violated; '\n"
        "      f'{len(tests.randomization)} randomization checks (lever vs lever), '\n"
        "      f'{int(tests.randomization[\"violated\"].sum())} rejected')\n"
        "tests.missing_edges.head(10)"
    ),
    new_markdown_cell(
        "## The regression gate\n\n"
        "`data/baseline_signs.json` records each edge's estimate, standard error and significance on the "
        "full reference sweep, with the settings of that fit. A new sweep fails the check only on what a "
        "reseed cannot do: a significant edge whose new CI lies across 0, an estimate that moved "
        "significantly given both standard errors (corrected over edges), or a significant edge gone "
        "missing; lost or gained significance is a warning with both CI widths "
        "(`udl check DATA --baseline data/baseline_signs.json` in CI). A baseline made with other "
        "settings is refused."
    ),
    new_code_cell(
        "check = causal.check_signs(effects, ROOT / 'data' / 'baseline_signs.json')\n"
        "print('passed' if check.passed else 'FAILED')\n"
        "check.summary['status'].value_counts()"
    ),
    new_markdown_cell(
        "## Effects that differ across task families\n\n"
        "`by='task'` fits every edge per task and pools them on within-task standardized columns "
        "(generalization is accuracy on one task and R² on another, so it is never pooled raw); "
        "`heterogeneity` flags edges whose significant sign differs between tasks."
    ),
    new_code_cell(
        "by_task = causal.fit_edges(runs, by='task')\n"
        "by_task.heterogeneity.sort_values('q_p').head(8)"
    ),
    new_markdown_cell(
        "## A known result, by eye: He initialization balances gradients\n\n"
        "Gradient stability peaks at `init_scale = 1` (He) in plain networks, falling off on both sides."
    ),
    new_code_cell(
        "fig, ax = plt.subplots(figsize=(6, 4))\n"
        "plain = runs[(runs['residual'] == 0) & (runs['normalization'] == 'none')]\n"
        "for depth, g in plain.groupby('depth'):\n"
        "    ax.scatter(g['init_scale'], g['gradient_stability'], s=6, label=f'depth {depth}', alpha=0.6)\n"
        "ax.set_xscale('log', base=2)\n"
        "ax.set_xlabel('init scale (multiple of He std)')\n"
        "ax.set_ylabel('gradient_stability')\n"
        "ax.legend()\n"
        "fig.tight_layout()"
    ),
]

nb = new_notebook(cells=cells, metadata={
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
})
nbformat.write(nb, Path(__file__).with_name("atlas.ipynb"))
