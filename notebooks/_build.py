"""Builds the analyst notebooks in notebooks/ from the cells below (run: python notebooks/_build.py).

Kept as code so that the notebooks' source is reviewable in diffs; the test
suite (tests/test_notebooks.py) executes every built notebook with
``UDL_SMALL=1``. Each notebook ends on a cell of assertions on its key numbers:
they pin what the prose says about the shipped data, so a regenerated
``data/reference`` or ``data/double_descent`` that changes a conclusion fails
the suite instead of leaving the prose wrong.

    01_tour            the data, the graph, one fit, the verdict sentence
    02_edges           every edge with its CI, design vs book adjustment, per-task heterogeneity,
                       plot_edge on a contested edge, a known result, the sign gate
    03_mediation       total effects, mediation paths (their totals equal total_effects), one path
    04_graph_tests     implied independences, violations, randomization checks, missing edges
    05_double_descent  MNIST-1D with label noise over width (data/double_descent/), edge 2 per regime
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str):
    return new_markdown_cell(dedent(text).strip())


def code(text: str):
    return new_code_cell(dedent(text).strip())


# the first code cell of every notebook on the reference sweep
def setup():
    return code("""
    import os
    import warnings
    from pathlib import Path

    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    from tqdm import TqdmWarning

    import causal

    # DoWhy imports tqdm.auto, which warns when ipywidgets is missing: nothing here draws a progress bar
    warnings.filterwarnings("ignore", category=TqdmWarning)

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
    SMALL = bool(os.environ.get("UDL_SMALL"))  # the test suite sets it: fewer bootstrap resamples
    N_BOOT = 100 if SMALL else 500
    runs = causal.load_runs(ROOT / "data" / "reference")
    if SMALL and len(runs) > 600:  # a larger reference is sliced in the suite (the shipped one has 300 runs)
        runs = runs.sample(n=600, random_state=0).sort_values("run_index")
    print(f"{len(runs)} runs, {runs.shape[1]} columns; {N_BOOT} bootstrap resamples")
""")


# ---- 01 ------------------------------------------------------------------------------------
TOUR = [
    md("""
        # 01 · A tour of the causal atlas

        *Understanding Deep Learning* (Prince, 2023) explains why deep learning works as a chain of causes:
        **levers** you set (capacity, initialization, optimizer, regularization, normalization, residual
        connections, ...) act through **mediators** (gradient stability, sharpness of the loss surface,
        implicit regularization, bias², variance, training convergence) on **outcomes** (generalization,
        deployment risk). This project turns that story into a randomized experiment: every lever is drawn
        independently per training run, every mediator and outcome is measured, and the book's graph is
        fitted to the table.

        This notebook is the entry point: the data, the graph, one fit, and the one-sentence verdict.
        The others go deeper: `02_edges` (every edge), `03_mediation` (how levers reach accuracy),
        `04_graph_tests` (is the graph itself consistent with the data?), `05_double_descent`.
    """),
    setup(),
    md("""
        ## The data: one row per run

        `data/reference/` is the shipped reference sweep: 300 runs of the large lever space on two task
        families (a random *teacher* network, regression or classification; and the book's own *MNIST-1D*,
        MLP or 1-D CNN). Each run trains K = 4 replicas on disjoint training sets; bias² and variance come
        from the replicas, every other metric is their mean.
    """),
    code("""
        runs.groupby(["task", "problem", "arch"]).size().rename("runs").to_frame()
    """),
    md("""
        Every column has a **role** declared once in `causal/schema.py`: randomized *levers* (raw ones such as
        `width` and `lr`, and the oriented columns the book's graph uses, such as `capacity` = log10 parameters
        and `init_quality` = −|log2(init scale ÷ He scale)|), *context* (data quantity and noise), *derived*
        (`overparam`), *mediators* and *outcomes*.
    """),
    code("""
        from causal.schema import COLUMNS

        roles = pd.DataFrame(
            [{"column": c, "role": COLUMNS[c].role.value, "meaning": COLUMNS[c].doc} for c in runs.columns if c in COLUMNS]
        )
        roles = roles[roles["role"].isin(["lever", "context", "derived", "mediator", "outcome"])]
        with pd.option_context("display.max_colwidth", 90, "display.max_rows", 80):
            display(roles.sort_values("role", kind="stable").reset_index(drop=True))
    """),
    md("""
        ### Diverged runs and nulls

        A run whose training loss blew up is marked `diverged = 1` (with the step in `diverged_step`). Its
        mediators and outcomes are **null**, never a placeholder an analysis could read as a value, and every
        analysis excludes it by default (and counts it). Other nulls are structural: `ece` is not defined for
        regression, sample-quality columns (`precision`, ...) only exist for generative runs, which this
        reference does not have.
    """),
    code("""
        diverged = runs.groupby("task")["diverged"].agg(["sum", "size"]).rename(columns={"sum": "diverged", "size": "runs"})
        diverged["share"] = (diverged["diverged"] / diverged["runs"]).round(3)
        display(diverged)
        outcome_cols = ["sharpness", "implicit_reg", "bias_sq", "variance", "convergence", "generalization", "ece", "precision"]
        nulls = pd.DataFrame({
            "null in diverged runs": runs.loc[runs["diverged"] == 1, outcome_cols].isna().sum(),
            "null in the others": runs.loc[runs["diverged"] == 0, outcome_cols].isna().sum(),
        })
        nulls
    """),
    md("""
        Most divergences are teacher runs (17 of 20), and all of them trained with plain SGD or momentum
        (none with Adam), mostly at large learning rates and mostly on the teacher's regression losses.
        `sharpness` is also null on six runs that did not diverge but did not train either (training loss about that
        of the best constant predictor, or worse): the log of a top Hessian eigenvalue ≤ 0 is not defined, so it is
        left null rather than capped. `ece` is null on every regression run.

        The distribution of each column per task family (diverged runs left out): generalization is accuracy
        on classification and R² on regression, so it is never pooled raw; the analysis z-scores it within
        each task × problem family.
    """),
    code("""
        from causal.plots import distributions

        fig = distributions(runs, ["capacity", "init_quality", "log_lr", "data_quantity", "data_noise", "overparam",
                                   "gradient_stability", "sharpness", "implicit_reg", "bias_sq", "variance",
                                   "convergence", "generalization", "test_error", "deployment_risk", "ece"])
    """),
    md("""
        ## The book's graph

        21 concepts and 27 edges (DESIGN.md §2), each with the sign the book's argument implies for the
        oriented columns (`?`: the book draws the arrow but states no direction). At the column level a concept
        with several columns becomes one edge per column (explicit regularization is five columns), and
        categorical levers become 0/1 contrasts (`optimizer_adam` vs SGD). Edge 3 is not an arrow: it says
        over-parameterization *moderates* edge 2 (`05_double_descent`).
    """),
    code("""
        from causal import BOOK_DAG

        book_edges = pd.DataFrame([
            {"number": e.number, "edge": e.label, "sign": e.sign.value, "chapter": e.chapter}
            for e in BOOK_DAG.edges.values()
        ])
        with pd.option_context("display.max_rows", 40):
            display(book_edges)
    """),
    code("""
        from causal.plots import draw_graph

        fig, ax = plt.subplots(figsize=(13, 7))
        draw_graph(BOOK_DAG.to_networkx(), ax=ax, title="The book's causal graph (concepts)")
        fig.tight_layout()
    """),
    md("""
        ## One fit

        `causal.fit_edges` estimates the **direct effect** of every column edge. DoWhy finds the adjustment set
        from the graph *plus the experiment's design* (the raw levers — task, depth, loss, ... — are randomized
        roots and possible causes of every mediator), a linear regression with robust (HC3) standard errors
        gives the estimate and its CI, and p-values are Holm-corrected across edges. The verdict compares the
        corrected result with the book's sign.
    """),
    code("""
        effects = causal.fit_edges(runs)
        effects
    """),
    code("""
        fig, ax = plt.subplots(figsize=(13, 8))
        effects.plot_graph(ax=ax)
        fig.tight_layout()
    """),
    md("""
        ## The verdict, in one sentence

        This is the line `udl fit data/reference` ends on.
    """),
    code("""
        from causal.cli_fit import closing_line

        verdicts = effects.summary["verdict"].value_counts()
        print(closing_line(effects.summary["verdict"], len(runs)))
        print(f"skipped: {sorted(set(effects.skipped['number']))} "
              f"({'; '.join(sorted(set(effects.skipped['reason'].str.split(':').str[0])))})")
    """),
    md("""
        **How to read it.** The data never *contradicts* the book on this sweep, and it *supports* 8 of the 37
        column edges it can estimate: dropout and augmentation lower variance, more data lowers variance,
        bias² lowers accuracy, He-like initialization and both normalizations balance gradients, and a matched
        architecture changes bias² (the book gives no direction there). The remaining 29 are *inconclusive*,
        which on 280 usable runs mostly means **too little power**, not "no effect": each run varies 15+ levers
        at once, and the Holm correction over 37 edges is strict. Edges 22 (transfer learning) and 24
        (capacity → sample quality) cannot be estimated at all: this reference has no transfer or generative
        runs. Do not read an inconclusive edge as evidence against the book; `02_edges` shows the CIs.

        The one edge to remember as a check that the machinery works: **He initialization balances gradients**
        (edge 9, `init_quality → gradient_stability`), a known result the data recovers.
    """),
    code("""
        effects.effect("init_quality", "gradient_stability")
    """),
    md("""
        ## Checks on the numbers above

        These assertions pin what this notebook says about the shipped data; if the reference is regenerated
        and one fails, the prose above needs rewriting too.
    """),
    code("""
        # the data: two families, 300 runs, 20 diverged (17 of them teacher runs), nulls where they belong
        assert len(runs) == 300 and set(runs["task"]) == {"teacher", "mnist1d"}
        assert int(runs["diverged"].sum()) == 20 and int(diverged.loc["teacher", "diverged"]) == 17
        assert runs.loc[runs["diverged"] == 1, "generalization"].isna().all()
        assert runs.loc[runs["diverged"] == 0, "generalization"].notna().all()
        assert runs["precision"].isna().all()  # no generative runs
        assert set(runs.loc[runs["diverged"] == 1, "optimizer"]) <= {"sgd", "momentum"}
        assert int(nulls.loc["sharpness", "null in the others"]) == 6
        # the fit: 37 column edges estimated; only the edges that need transfer (22) or generative (24) runs skipped
        assert len(effects.summary) == 37 and effects.n_diverged == 20
        assert set(effects.skipped["number"]) == {22, 24}
        assert verdicts.get("contradicts", 0) == 0 and verdicts.get("supports", 0) == 8
        # the known result: He initialization balances gradients
        he = effects.effect("init_quality", "gradient_stability")
        assert he["verdict"] == "supports" and he["ci_low"] > 0
    """),
]


# ---- 02 ------------------------------------------------------------------------------------
EDGES = [
    md("""
        # 02 · Every edge: estimates, adjustment, heterogeneity, diagnostics

        For every column edge of the book's graph: its direct effect with a confidence interval, how the
        choice of adjustment graph changes it, whether task families agree, what one contested edge looks
        like point by point, and the regression gate that CI runs on a regenerated sweep.
    """),
    setup(),
    md("""
        ## The direct effect of every edge

        `estimate` is per unit of the treatment column (per decade of parameters for `capacity`; per 0/1 step
        for a switch), `std_effect` the same in standard deviations of both columns (comparable across edges).
        Edges into `generalization` and `deployment_risk` are in within-family sd units: their raw units
        (accuracy, R²) differ by problem. The CI is the uncorrected 95% interval; `p_adjusted` is Holm-corrected
        over the 37 edges and decides the verdict.
    """),
    code("""
        effects = causal.fit_edges(runs)
        s = effects.summary
        near = s[(s["verdict"] == "inconclusive") & ((s["ci_low"] > 0) | (s["ci_high"] < 0))]
        opposite = near[near["expected_sign"].isin(["+", "-"]) & (near["estimated_sign"] != near["expected_sign"])]
        print(f"{len(near)} inconclusive edges with an uncorrected CI clear of 0; opposite to the book: "
              f"{sorted(opposite['number'])}")
        cols = ["number", "treatment", "outcome", "estimate", "ci_low", "ci_high", "p_adjusted", "std_effect", "n",
                "expected_sign", "verdict"]
        with pd.option_context("display.max_rows", 60, "display.precision", 3):
            display(effects.summary[cols])
    """),
    md("""
        The forest plot draws the standardized effects with intervals **matched to the corrected verdicts**
        (a bar clear of zero is a significant edge), the book's expected sign as a marker, and colour by
        verdict.
    """),
    code("""
        fig, ax = plt.subplots(figsize=(9, 12))
        effects.plot_forest(ax=ax)
        fig.tight_layout()
    """),
    md("""
        Reading the table: the supported edges are large and consistent (dropout → variance at −1.4 decades
        per unit of dropout rate; batch and layer norm each +0.2 decades of gradient balance; bias² → accuracy
        −1.5 within-family sd per decade of bias²). Nine inconclusive edges have a 95% CI that excludes 0
        *before* the correction over 37 edges, three of them with the sign opposite to the book's (residual
        connections → gradient stability and → sharpness, data quantity → deployment risk): they are what a
        larger sweep would settle, not findings. Weight decay's raw estimates look huge (hundreds) only because
        the lever spans 0–0.001; its `std_effect` is small.

        ## Design versus the book's graph alone

        `adjust="book"` identifies each edge on the book's graph alone. That graph has no arrows from the raw
        levers (task, depth, loss, learning rate, ...) to the mediators, so backdoor paths through them stay
        open: for example the learning rate lowers sharpness *and* moves convergence, and an architecture that
        matches the data (a CNN) also comes with other widths and depths than an MLP. The default
        `adjust="design"` adds the experiment's design to the graph and closes those paths.
    """),
    code("""
        effects_book = causal.fit_edges(runs, adjust="book")
        key = ["number", "treatment", "outcome"]
        both = effects.summary[key + ["estimate", "ci_low", "ci_high", "verdict"]].merge(
            effects_book.summary[key + ["estimate", "ci_low", "ci_high", "verdict"]], on=key, suffixes=("_design", "_book"))
        changed = both[both["verdict_design"] != both["verdict_book"]].reset_index(drop=True)
        print("verdicts, design:", effects.summary["verdict"].value_counts().to_dict())
        print("verdicts, book:  ", effects_book.summary["verdict"].value_counts().to_dict())
        changed
    """),
    code("""
        fig, ax = plt.subplots(figsize=(9, 12))
        causal.edges.plot_forest([effects, effects_book], ax=ax, labels=["design", "book graph only"])
        fig.tight_layout()
    """),
    md("""
        The book-only fit finds more "significant" edges, including two **contradictions**: sharpness →
        convergence (+, the book says −) and inductive bias → variance (+, the book says −). Both disappear
        under the design adjustment, which is the evidence that they are **artefacts of confounding by the
        raw levers**, not findings: the learning rate, the optimizer and the loss move sharpness and
        convergence together (`04_graph_tests` finds lr → sharpness the strongest effect the book lacks),
        and the CNN/MLP switch comes with other widths, depths and parameter counts. The starkest case is
        label smoothing → bias² (book only: +3.7, "supports"; design: −0.02): label smoothing is forced to 0
        unless the loss is cross-entropy, so without the design it stands in for the loss and the problem.
        The table of changed verdicts also misses one: inductive bias → bias² (edge 21) is "supports" under
        both fits but with **opposite signs** (design −0.17, book only +0.37), because the book states no
        direction for it; a matched architecture lowers bias² once its other differences are adjusted for. The design fit is the one to trust; the price is
        wider CIs for edges whose treatment the raw levers largely determine (capacity is a function of width,
        depth, architecture and task).

        ## Do the task families agree?

        `by="task"` fits every edge within each task family and pools the standardized estimates;
        `heterogeneity` gives each family's standardized effect and Cochran's Q test of equality.
    """),
    code("""
        by_task = causal.fit_edges(runs, by="task")
        het = by_task.heterogeneity.sort_values("q_p").reset_index(drop=True)
        het.head(10)
    """),
    md("""
        Nine edges differ between MNIST-1D and the teacher tasks (Q-test p < 0.05, before any correction over
        37 tests): variance → generalization is ≈ 0 on MNIST-1D but clearly negative on the teacher tasks;
        augmentation lowers variance on MNIST-1D but not on the teacher;
        the learning rate and optimizer drive implicit regularization on the teacher but barely on MNIST-1D;
        and deployment risk falls with accuracy on the teacher tasks but not on MNIST-1D.
        None has *significant opposite signs* in both families (`sign_differs` is False everywhere), so no
        pooled verdict hides a reversal; but a pooled estimate of a heterogeneous edge is an average over
        families, and with two families and ~140 runs each, per-family estimates are the ones to quote.

        ## A contested edge, point by point: capacity → variance (edge 2)

        Edge 2 is the book's central claim about capacity. Its pooled expected sign is `?` (+ below the
        interpolation threshold, − above), so "supports" means an arrow exists. Under the book-only graph it is
        "supported" (+0.17 decades of variance per decade of parameters); under the design fit the estimate is the same
        but its corrected p-value is not significant; and the families differ (Q-test p ≈ 0.06). The
        added-variable plot shows the points behind the slope, per task: both columns residualized on the
        edge's adjustment set, binned means ± 2 SE, a LOWESS smoother, high-leverage points ringed and
        diverged runs as crosses.
    """),
    code("""
        axes = by_task.plot_edge("capacity", "variance", runs)
        plt.gcf().set_size_inches(11, 4.5)
        plt.gcf().tight_layout()
        edge2 = by_task.strata[(by_task.strata["treatment"] == "capacity") & (by_task.strata["outcome"] == "variance")]
        edge2[["stratum", "estimate", "ci_low", "ci_high", "p_value", "n"]]
    """),
    md("""
        On MNIST-1D the slope is positive and carried by the bulk of the runs, not by a few high-leverage
        points; on the teacher tasks it is flat. The book's claim is about *under-parameterized* models
        (edge 3 flips it above the interpolation threshold), and these runs mix both regimes and many other
        levers: `05_double_descent` isolates capacity on a dedicated width sweep.

        ## A known result: He initialization balances gradients

        In plain networks (no normalization, no residual connections) gradient stability should peak at the
        He scale (`init_scale = 1`) and fall off on both sides, more steeply the deeper the network (book §7.5).
        Binning the init scale by powers of two:
    """),
    code("""
        ok = runs[runs["diverged"] == 0]
        plain = ok[(ok["residual"] == 0) & (ok["normalization"] == "none")].copy()
        plain["log2_init"] = np.round(np.log2(plain["init_scale"])).astype(int)
        he_table = plain.groupby(["log2_init", "depth"])["gradient_stability"].mean().unstack()
        fig, ax = plt.subplots(figsize=(6, 4))
        for depth, g in plain.groupby("depth"):
            ax.scatter(g["init_scale"], g["gradient_stability"], s=8, alpha=0.6, label=f"depth {depth}")
        ax.axvline(1.0, color="grey", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("init scale (multiple of the He std)")
        ax.set_ylabel("gradient_stability (0 = balanced)")
        ax.set_title("Plain networks: gradient balance peaks at He init")
        ax.legend()
        fig.tight_layout()
        he_table.round(3)
    """),
    md("""
        At every depth the bin around He init (`log2_init = 0`) has the best mean balance, and the fall-off
        away from it grows with depth: the textbook result, recovered from randomized runs.

        ## The regression gate

        `data/baseline_signs.json` records every edge's estimate, standard error and significance on the full
        reference with the fit's settings. `check_signs` fails only on what a reseed cannot do: a significant
        edge whose new CI lies on the other side of 0, an estimate that moved significantly given both standard
        errors, or a significant edge gone missing; lost or gained significance is a warning with both CI
        widths. CI runs `udl check NEW_SWEEP --baseline data/baseline_signs.json`. Here the reference is
        checked against its own baseline, so it must pass with every significant edge `stable`.
    """),
    code("""
        check = causal.check_signs(effects, ROOT / "data" / "baseline_signs.json")
        print("PASSED" if check.passed else "FAILED")
        check.summary["status"].value_counts()
    """),
    md("""
        ## Checks on the numbers above
    """),
    code("""
        v_design = effects.summary["verdict"].value_counts()
        v_book = effects_book.summary["verdict"].value_counts()
        # design: 8 supported, none contradicted; the book graph alone: contradictions on edges 15 and 20 only
        assert v_design.get("contradicts", 0) == 0 and v_design.get("supports", 0) == 8
        book_contra = effects_book.summary.loc[effects_book.summary["verdict"] == "contradicts", "number"]
        assert sorted(book_contra) == [15, 20], sorted(book_contra)
        assert set(changed["number"]) >= {15, 20}
        ls_book, ls_design = effects_book.effect("label_smoothing", "bias_sq"), effects.effect("label_smoothing", "bias_sq")
        assert ls_book["verdict"] == "supports" and ls_design["ci_low"] < 0 < ls_design["ci_high"]
        # edge 21 flips sign between the adjustments; both count as "supports" (the book gives no direction)
        e21d, e21b = effects.effect("inductive_bias", "bias_sq"), effects_book.effect("inductive_bias", "bias_sq")
        assert e21d["ci_high"] < 0 < e21b["ci_low"] and e21d["verdict"] == e21b["verdict"] == "supports"
        # nine near-misses before correction, three of them against the book's sign
        assert len(near) == 9 and sorted(opposite["number"]) == [11, 14, 26]
        # dropout lowers variance: CI below 0 under both adjustments
        assert effects.effect("dropout", "variance")["ci_high"] < 0
        assert effects_book.effect("dropout", "variance")["ci_high"] < 0
        # edge 2: book-only supports; design: same sign, not significant after correction
        e2d, e2b = effects.effect("capacity", "variance"), effects_book.effect("capacity", "variance")
        assert e2b["verdict"] == "supports" and e2d["verdict"] == "inconclusive" and e2d["estimate"] > 0
        # heterogeneity: some edges differ across tasks, none with significant opposite signs
        assert (het["q_p"] < 0.05).sum() == 9 and not het["sign_differs"].any()
        mn = edge2.set_index("stratum")
        assert mn.loc["mnist1d", "ci_low"] > 0 and mn.loc["teacher", "ci_low"] < 0 < mn.loc["teacher", "ci_high"]
        # He init: the bin around init_scale = 1 has the best gradient balance at every depth
        assert all(he_table[d].idxmax() == 0 for d in he_table.columns), he_table
        # the sign gate passes against the shipped baseline
        assert check.passed and (check.summary["status"] == "stable").sum() == v_design.get("supports", 0)
    """),
]


# ---- 03 ------------------------------------------------------------------------------------
MEDIATION = [
    md("""
        # 03 · Total effects and mediation: how levers reach accuracy

        `02_edges` estimated each arrow's *direct* effect. An analyst usually asks something else first:
        **what does this lever do to accuracy, all paths together?** (the *total* effect), and then **through
        which mediators?** (mediation). Both come from the same linear structural model and the same bootstrap,
        so their numbers agree.
    """),
    setup(),
    md("""
        ## Total effects

        `causal.total_effects` regresses every mediator and outcome on each randomized lever and the other
        randomized columns (randomization makes this the total effect), pooled over families and within each
        task/problem family, with bootstrap CIs (Holm-corrected within each family) and a sentence in plain
        units.
    """),
    code("""
        totals = causal.total_effects(runs, n_boot=N_BOOT)
        pooled = totals.summary[totals.summary["family"] == "pooled"]
        strongest = pooled.sort_values("p_adjusted").head(12)
        with pd.option_context("display.max_colwidth", 100):
            display(strongest[["lever", "outcome", "estimate", "ci_low", "ci_high", "p_adjusted", "plain"]])
    """),
    code("""
        from causal.plots import totals_heatmap

        fig = totals_heatmap(totals.summary)
    """),
    md("""
        The strongest total effects are partly ones the book's graph does not draw: the learning rate and the
        matched loss move **sharpness** (+1 decade of lr: sharpness about ×0.34), which the book connects to no
        lever but normalization and residual connections (`04_graph_tests` lists them as missing edges).
        Among the book's claims, dropout lowers variance, a matched architecture raises accuracy, and more
        training data raises accuracy strongly.

        ### "What does the learning rate do to accuracy?"
    """),
    code("""
        lr = totals.summary[(totals.summary["lever"] == "log_lr") & (totals.summary["outcome"] == "generalization")]
        with pd.option_context("display.max_colwidth", 100):
            display(lr[["family", "estimate", "ci_low", "ci_high", "p_adjusted", "n", "plain"]])
    """),
    md("""
        On this reference: nothing detectable. Every family's CI covers 0 (on MNIST-1D +1 decade of lr is
        +1.7 accuracy points, 95% CI −3 to +6 points). That is a statement about *this* design, where each
        optimizer draws lr over a range tuned to it, so the learning rates are mostly reasonable ones; it is
        not a statement that lr does not matter (it does move sharpness strongly, see above).

        ## Mediation paths

        `causal.mediation_paths` decomposes each lever's effect on `generalization` along every path of the
        book's graph: the path-specific effect (the product of the path's coefficients), the direct effect,
        the other indirect effects, the sum over the book's paths, the **total**, and the **unexplained** part
        (total − book paths: effects through paths the book does not draw).
    """),
    code("""
        paths = causal.mediation_paths(runs, n_boot=N_BOOT)
        table = paths.summary.sort_values("p_adjusted").reset_index(drop=True)
        with pd.option_context("display.max_colwidth", 70, "display.precision", 3):
            display(table[["path", "estimate", "ci_low", "ci_high", "p_adjusted", "total", "book_paths", "unexplained"]].head(12))
    """),
    code("""
        fig, ax = plt.subplots(figsize=(9, 10))
        paths.plot(ax=ax, data=runs)  # standardized units: sd of accuracy per sd of the lever
        fig.tight_layout()
    """),
    md("""
        Two paths survive the correction over all paths: dropout → bias² → generalization (negative) and
        inductive bias → bias² → generalization (positive: a matched architecture lowers bias², which raises
        accuracy). Long chains such as init → gradient stability → convergence → generalization are ≈ 0: each
        link is weak or inconclusive, so their product is tiny — the book's story may be right, but this
        sweep cannot follow a signal through three links.

        ### Mediation's total is the total effect

        For a randomized source, the "total" in each decomposition is estimated exactly as `total_effects`
        does it (same rows, same adjustment, same bootstrap seed), so the two tables must agree: an analyst
        never sees two different answers to one question.
    """),
    code("""
        gen = totals.summary[(totals.summary["family"] == "pooled") & (totals.summary["outcome"] == "generalization")]
        agree = table[["source", "total", "total_ci_low", "total_ci_high"]].drop_duplicates("source").merge(
            gen[["lever", "estimate", "ci_low", "ci_high"]], left_on="source", right_on="lever")
        agree["difference"] = (agree["total"] - agree["estimate"]).abs()
        print(f"{len(agree)} sources; largest |mediation total − total_effects| = {agree['difference'].max():.2e}")
        agree[["source", "total", "estimate", "total_ci_low", "ci_low", "difference"]]
    """),
    md("""
        ## One path in detail: dropout → bias² → generalization
    """),
    code("""
        one = causal.mediation(runs, "dropout -> bias_sq -> generalization", n_boot=N_BOOT)
        display(one)
        fig, ax = plt.subplots(figsize=(7, 3.5))
        one.plot(ax=ax)
        fig.tight_layout()
        one.edges[["treatment", "outcome", "estimate", "ci_low", "ci_high", "p_value"]]
    """),
    md("""
        Dropout raises bias² (+0.47 decades per unit of dropout rate) and bias² lowers accuracy, so the path
        through bias² *costs* accuracy (about −0.7 within-family sd per unit of dropout; −0.2 sd at the largest
        rate drawn, 0.3). Yet dropout's **total** effect on accuracy is not significantly negative: its CI
        covers 0 and leans positive, and the **unexplained** part (total − the sum over the book's paths) is
        significantly positive. The book's other path, through variance, adds almost nothing (`book_paths` is
        −0.65 against −0.72 for the bias² path alone) because variance → accuracy is weak on this sweep, so the
        offsetting benefit runs through paths the book does not draw. This is the typical shape of a
        regularizer, a cost in bias that a benefit elsewhere offsets, but the book's graph does not say where
        the benefit comes from. Note that the path-specific product assumes no
        interaction between dropout and the mediator, and these are linear fits on 274 runs.

        ## Checks on the numbers above
    """),
    code("""
        # mediation's total equals total_effects for every source (same bootstrap), within float tolerance
        assert len(agree) >= 10
        assert np.allclose(agree["total"], agree["estimate"], rtol=1e-9, atol=1e-12)
        assert np.allclose(agree["total_ci_low"], agree["ci_low"], rtol=1e-9, atol=1e-12)
        # lr: no detectable total effect on accuracy in any family
        assert ((lr["ci_low"] < 0) & (lr["ci_high"] > 0)).all() and len(lr) == 4
        # the strongest pooled totals: lr lowers sharpness, dropout lowers variance
        lr_sharp = totals.effect("log_lr", "sharpness")
        assert lr_sharp["ci_high"] < 0 and lr_sharp["p_adjusted"] < 1e-6
        assert totals.effect("dropout", "variance")["ci_high"] < 0
        # exactly the two bias² paths survive the correction over paths
        sig = set(table.loc[table["p_adjusted"] < 0.05, "path"])
        assert sig == {"dropout -> bias_sq -> generalization", "inductive_bias -> bias_sq -> generalization"}, sig
        # the dropout path: a significant cost through bias², a total whose CI covers 0, a positive unexplained part
        s = one.summary.set_index("effect")
        assert s.loc["path_specific", "ci_high"] < 0
        assert s.loc["total", "ci_low"] < 0 < s.loc["total", "ci_high"]
        assert s.loc["unexplained", "ci_low"] > 0
        assert s.loc["book_paths", "estimate"] < 0 and abs(s.loc["book_paths", "estimate"] - s.loc["path_specific", "estimate"]) < 0.2
    """),
]


# ---- 04 ------------------------------------------------------------------------------------
GRAPH_TESTS = [
    md("""
        # 04 · Is the graph consistent with the data?

        Estimating the book's edges assumes its graph. The graph can be tested: every missing arrow is a claim
        of conditional independence (each column is independent of its non-descendants given its parents: the
        local Markov condition). `causal.falsify` tests each such implication with a Fisher-z partial
        correlation test (Holm-corrected), checks the randomization itself (levers must be independent of each
        other), and searches for strong lever → mediator/outcome effects the book does not draw.
    """),
    setup(),
    code("""
        tests = causal.falsify(runs)
        tests
    """),
    md("""
        ## The randomization checks

        Levers were drawn independently, so every lever-vs-lever independence must hold (after accounting for
        the columns computed from the same raw levers, e.g. `log_lr`'s range depends on the optimizer). These
        checks test the generator, not the book: a rejection here would mean a bug in the sweep.
    """),
    code("""
        rand = tests.randomization
        print(f"{len(rand)} lever-vs-lever checks, {int(rand['violated'].sum())} rejected; "
              f"smallest corrected p = {rand['p_adjusted'].min():.3f}")
    """),
    md("""
        ## The violations
    """),
    code("""
        print(f"{len(tests.summary)} implications tested, {len(tests.violations)} violated "
              f"(raw rejection rate {tests.rejection_rate:.2f} at alpha {tests.alpha})")
        tests.violations[["x", "y", "n_given", "n", "partial_corr", "p_adjusted"]]
    """),
    code("""
        fig, ax = plt.subplots(figsize=(7, 4))
        tests.plot_pvalues(ax=ax)
        fig.tight_layout()
    """),
    md("""
        **What a violation means here.** `x ⟂ y | given` violated says: after conditioning on `x`'s parents in
        the graph (all randomized levers, under the design), `x` and `y` are still correlated, so the graph
        lacks an arrow between them or a common cause of both. Each one reads as a specific gap:

        - **convergence and bias²** (partial correlation ≈ −0.43, the strongest): runs that fit their training
          sets better have lower bias². The book draws both as effects of the levers but no link between them;
          a run that trains longer or with a better-suited optimizer reduces both, so the graph is missing an
          arrow convergence → bias² (or a shared "how well did optimization go" cause that the levers do not
          fully capture).
        - **implicit_reg and sharpness**, **generalization and implicit_reg**: the minibatch-gradient measure of
          implicit regularization tracks sharpness and accuracy beyond what the levers explain; both come from
          the same training trajectory.
        - **deployment_risk with sharpness and implicit_reg** given generalization: the worst-group gap is not a
          function of in-distribution accuracy alone.

        A violation is evidence against the graph as drawn, not against any single edge estimate; it is
        strongest for mediator–mediator pairs, which the book leaves unlinked. The randomized levers, by
        contrast, pass every check.

        ## The book's graph without the design

        Testing the book's graph alone (`adjust="book"`) gives many more implications, since it claims more
        independences, and more violations: many of them are lever → mediator effects the book omits (the
        learning rate on sharpness), the same confounding `02_edges` found.
    """),
    code("""
        tests_book = causal.falsify(runs, adjust="book")
        print(f"book only: {len(tests_book.summary)} implications, {len(tests_book.violations)} violated; "
              f"design: {len(tests.summary)} implications, {len(tests.violations)} violated")
        tests_book.violations[["x", "y", "partial_corr", "p_adjusted"]].head(8)
    """),
    md("""
        ## Strong effects the book's graph is missing

        Every randomized column → mediator/outcome pair without a book arrow is estimated (`edge_search`);
        `missing_edges` keeps those with |standardized effect| > 0.1 that survive the correction.
    """),
    code("""
        fig, ax = plt.subplots(figsize=(7, 5))
        tests.plot_missing_edges(ax=ax)
        ax.set_title("Effects the book lacks: red = reported (|std| > 0.1, Holm p < 0.05), grey = not significant",
                     fontsize=9)
        fig.tight_layout()
        tests.missing_edges[["source", "target", "method", "estimate", "std_effect", "p_adjusted"]]
    """),
    md("""
        The two longest bars are grey: capacity → generalization and inductive bias → generalization are large
        but imprecise (capacity's SE is 0.64 on an estimate of −1.55), because capacity and the architecture
        are largely determined by width, depth and task, which the estimate must adjust for. Among the
        reported ones, the learning rate and the optimizer shape **sharpness** (higher lr and Adam: flatter minima at the end
        of training — the edge of stability at work), which the book does not draw; data quantity improves
        generalization directly, beyond its book path through variance; label noise slows convergence. These are
        candidates for the findings, to be re-checked on the all-family atlas.

        ## Checks on the numbers above
    """),
    code("""
        # the randomization holds: no lever-vs-lever check rejected
        assert len(rand) > 100 and int(rand["violated"].sum()) == 0
        # the graph is falsified: 5 of 20 implications violated; convergence vs bias² the strongest, negative
        assert len(tests.summary) == 20 and len(tests.violations) == 5
        strongest = tests.violations.loc[tests.violations["p_adjusted"].idxmin()]
        assert {strongest["x"], strongest["y"]} == {"convergence", "bias_sq"} and strongest["partial_corr"] < -0.3
        # the book graph alone claims more independences and is violated more often
        assert len(tests_book.summary) > len(tests.summary) and len(tests_book.violations) > len(tests.violations)
        # missing edges: the learning rate lowers sharpness, the strongest one
        top = tests.missing_edges.iloc[0]
        assert (top["source"], top["target"]) == ("log_lr", "sharpness") and top["std_effect"] < -0.3
        assert not tests.passed
    """),
]


# ---- 05 ------------------------------------------------------------------------------------
DD_COMMAND = (
    "udl generate --runs 36 --seed 2026 --out data/double_descent --space large --workers 1 --shard-size 3 "
    "--fix task=mnist1d --fix arch=mlp --fix depth=1 --fix loss=cross_entropy --fix init_scale=1 "
    "--fix optimizer=adam --fix lr=0.005 --fix batch_size=64 --fix weight_decay=0 --fix dropout=0 "
    "--fix label_smoothing=0 --fix augmentation=false --fix early_stopping=false --fix normalization=none "
    "--fix residual=false --fix n_train=1000 --fix noise=0.15 --fix epochs=400 "
    "--vary width=8,12,16,24,32,48,64,128,192,256,512,1024"
)

DOUBLE_DESCENT = [
    md("""
        # 05 · Double descent on MNIST-1D with label noise

        Book §8.4: with noisy labels, test error first falls with capacity, rises again where the model just
        manages to fit (interpolate) the training set, and falls again as capacity grows past that point.
        Bias² keeps falling; variance peaks at the interpolation threshold. Edge 2 (capacity → variance) is
        therefore **+ below the threshold and − above it**, which is what edge 3 (over-parameterization
        moderates edge 2) encodes.

        The shipped reference cannot show this: its MNIST-1D runs vary width, depth, architecture, data size,
        noise and a dozen other levers at once (see the end of this notebook). So this notebook uses a
        dedicated sweep, `data/double_descent/`: one hidden layer, 15% label noise (the book's setting),
        1,000 training examples, Adam, 400 epochs, no regularization, 12 widths from 8 to 1,024, 3 runs per
        width (each run: K = 4 replicas on disjoint training sets). It was made with

        ```
        __COMMAND__
        ```

        (2.5 CPU-minutes; 3 min 41 s wall on this project's shared 2-core machine; 296 KB).
    """.replace("__COMMAND__", DD_COMMAND)),
    code("""
        import warnings
        from pathlib import Path

        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd
        from tqdm import TqdmWarning

        import causal
        from causal.regression import ols

        warnings.filterwarnings("ignore", category=TqdmWarning)  # DoWhy imports tqdm.auto; no progress bars here

        pd.set_option("display.width", 200)
        ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
        dd = causal.load_runs(ROOT / "data" / "double_descent")
        varied = [c for c in ["task", "arch", "depth", "width", "n_train", "noise", "lr", "optimizer", "epochs",
                              "weight_decay", "dropout", "normalization"] if dd[c].nunique() > 1]
        print(f"{len(dd)} runs; levers that vary: {varied}; diverged: {int(dd['diverged'].sum())}")
        dd.groupby("width").size().rename("runs").to_frame().T
    """),
    md("""
        ## Test error, bias² and variance against width

        Parameters of a one-hidden-layer MLP on MNIST-1D (40 inputs, 10 classes): 51 × width + 10 (bottom
        axis; the width is on the top axis).
        Two thresholds are marked:

        - the **nominal** interpolation threshold of the package's `overparam` column: parameters =
          training examples × outputs (10,000 here, width ≈ 196; `overparam` = 0, and `overparameterized` = 1
          above it);
        - the **measured** one: the narrowest width whose training loss falls below 1% of the best constant
          predictor's (`convergence` ≥ 2, i.e. the replicas fit their noisy training labels).
    """),
    code("""
        dd["params"] = 10 ** dd["capacity"]
        per_width = dd.groupby("width").agg(
            params=("params", "mean"), overparam=("overparam", "mean"),
            test_error=("test_error", "mean"), test_error_sd=("test_error", "std"),
            bias_sq=("bias_sq", "mean"), variance=("variance", "mean"), convergence=("convergence", "mean"),
        )
        nominal = float(dd["n_train"].iloc[0] * 10)  # overparam = 0: parameters = n_train × classes
        fits = per_width[per_width["convergence"] >= 2]
        w_star = int(fits.index.min())
        measured = float(per_width.loc[w_star, "params"])
        print(f"nominal threshold: {nominal:,.0f} parameters; measured: width {w_star} = {measured:,.0f} parameters "
              f"(overparam {per_width.loc[w_star, 'overparam']:.2f})")
        per_width.round(3)
    """),
    code("""
        fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), sharex=True)
        panels = [("test_error", "test error (clean test labels)"), ("bias_sq", "log10 bias²"),
                  ("variance", "log10 variance"), ("convergence", "convergence = −log10(train loss ÷ constant)")]
        for ax, (col, label) in zip(axes, panels):
            ax.scatter(dd["params"], dd[col], s=10, color="#90a4ae", label="runs")
            ax.plot(per_width["params"], per_width[col], "o-", color="#1e88e5", ms=4, label="mean per width")
            ax.axvline(measured, color="#e53935", ls="--", lw=1, label=f"measured interpolation (width {w_star})")
            ax.axvline(nominal, color="black", ls=":", lw=1, label="nominal: params = n_train × classes")
            ax.set_xscale("log")
            ax.set_xlabel("parameters")
            ax.set_title(label, fontsize=9)
            top = ax.secondary_xaxis("top", functions=(lambda p: np.maximum(p - 10, 1e-9) / 51, lambda w: 51 * w + 10))
            top.set_xticks([8, 32, 128, 512], labels=["8", "32", "128", "512"])
            top.tick_params(labelsize=7)
            top.set_xlabel("width", fontsize=7, labelpad=1)
        axes[0].legend(fontsize=7, loc="lower left")
        fig.suptitle("MNIST-1D, 15% label noise, one hidden layer, n_train 1,000: width 8 to 1,024", fontsize=10)
        fig.tight_layout()
    """),
    md("""
        **Reading the figure.**

        - **Test error** is flat from width 8 to 16 (≈ 0.700), rises to a plateau at widths 24–48 (≈ 0.715),
          and then falls steadily to 0.650 at width 1,024: the double descent, with the peak ending *at* the
          measured interpolation threshold. The rise is small (1.6 points, against a run-to-run sd of about
          1 point), the second descent clear (6.7 points).
        - **Variance** rises steeply up to the interpolation threshold (the model starts fitting the noisy
          labels, and each replica fits *its own* noise) and falls beyond it: the mechanism the book gives.
        - **Bias²** falls monotonically, as edge 1 says.
        - **The measured threshold sits far below the nominal one**: this cross-entropy network fits 1,000
          noisy labels with about 2.5 parameters per example (`overparam` ≈ −0.6), not with n_train × classes
          parameters. The nominal `overparam > 0` rule is a squared-loss rule of thumb; for classification it
          puts the interpolation peak in the "under-parameterized" regime.

        Caveats: the absolute error is high (1,000 examples with 15% wrong labels and a one-hidden-layer MLP:
        the shape is the result, not the level), three runs per width, one learning rate and one seed of the
        sweep.

        ## Edge 2 per regime

        Width is the only lever that varies in this sweep, so a regression of variance on capacity within a
        regime is capacity's *total* effect there (HC3 standard errors), split at the measured threshold:
    """),
    code("""
        def slope(rows):
            fit = ols(rows["variance"].to_numpy(), rows[["capacity"]].to_numpy(), se="hc3")
            return {"estimate": fit.params[0], "ci_low": fit.ci_low[0], "ci_high": fit.ci_high[0],
                    "p_value": fit.p_value[0], "n": fit.n}

        splits = {
            f"under: width ≤ {w_star} (measured)": dd["width"] <= w_star,
            f"over: width ≥ {w_star} (measured)": dd["width"] >= w_star,
            "under: overparam ≤ 0 (nominal)": dd["overparam"] <= 0,
            "over: overparam > 0 (nominal)": dd["overparam"] > 0,
        }
        regimes = pd.DataFrame({name: slope(dd[rows]) for name, rows in splits.items()}).T.astype({"n": int})
        regimes.index.name = "regime (log10 variance per decade of parameters)"
        regimes
    """),
    md("""
        Split at the measured threshold, edge 2 has the book's two signs, each with a CI clear of 0: about
        +0.9 decades of variance per decade of parameters below it, and about −0.07 above it (a slow decline:
        variance falls by ~0.1 decades over the next 1.3 decades of parameters). With the nominal split the
        "under" regime mixes the steep rise with part of the decline, so its slope is smaller but still
        positive, and the "over" regime holds only the three widest widths (9 runs; still negative).

        The package's own moderation estimate (`fit_edges(...).moderation`, edge 3) uses the nominal split
        and estimates edge 2 as a *direct* effect, adjusting for `implicit_reg`, which the graph makes a
        parent of variance:
    """),
    code("""
        dd_effects = causal.fit_edges(dd)
        display(dd_effects.moderation[["regime", "estimate", "ci_low", "ci_high", "p_adjusted", "n", "expected_sign", "verdict"]])
        dd_effects.effect("implicit_reg", "variance")
    """),
    md("""
        The interaction (over-minus-under slope) is strongly negative, as edge 3 says, but the "over" slope
        alone is inconclusive. Read this with care: in this sweep `implicit_reg` changes *only* through width
        (learning rate, batch size and optimizer are fixed), so adjusting for it removes part of capacity's own
        effect, and the fit's `implicit_reg → variance` "contradicts" verdict on these runs is an **artefact of
        that collinearity**, not evidence about implicit regularization. On a sweep that varies one lever,
        the per-regime total effect above is the estimate to quote.

        ## Why the reference cannot show it
    """),
    code("""
        reference = causal.load_runs(ROOT / "data" / "reference")
        ref_mnist = reference[(reference["task"] == "mnist1d")]
        ref_varied = [c for c in ["arch", "width", "depth", "n_train", "noise", "optimizer", "lr", "batch_size",
                                  "weight_decay", "dropout", "normalization", "residual", "epochs"]
                      if ref_mnist[c].nunique() > 1]
        print(f"reference MNIST-1D: {len(ref_mnist)} runs; {len(ref_varied)} levers vary at once: {ref_varied}")
        ref_effects = causal.fit_edges(reference)
        ref_effects.moderation[["regime", "estimate", "ci_low", "ci_high", "p_adjusted", "n", "verdict"]]
    """),
    md("""
        On the reference, edge 2 is inconclusive in both regimes and the interaction is ≈ 0: capacity's
        effect on variance is small next to everything else that varies, and the nominal regime split does
        not line up with where each run actually interpolates (that depends on its own data size, noise, depth
        and loss). A dedicated one-lever sweep shows what the randomized atlas averages away.

        ## Checks on the numbers above
    """),
    code("""
        # the sweep: 12 widths × 3 runs, only width varies, nothing diverged
        assert len(dd) == 36 and varied == ["width"] and (dd.groupby("width").size() == 3).all()
        assert int(dd["diverged"].sum()) == 0
        te = per_width["test_error"]
        peak_width = int(te.loc[16:128].idxmax())
        # double descent: a peak between widths 24 and 64, above the first minimum and well above the widest
        assert 24 <= peak_width <= 64, peak_width
        assert te[peak_width] > te[16] + 0.01 and te[peak_width] > te[1024] + 0.05
        # variance peaks near the measured interpolation threshold; bias² falls throughout
        assert abs(np.log2(int(per_width["variance"].idxmax()) / w_star)) <= 1
        assert np.corrcoef(np.log10(per_width["params"]), per_width["bias_sq"])[0, 1] < -0.9
        # the measured threshold lies far below the nominal one (cross-entropy interpolates early)
        assert 24 <= w_star <= 64 and per_width.loc[w_star, "overparam"] < -0.4
        # edge 2 per regime at the measured threshold: + below, − above, both CIs clear of 0
        under, over = regimes.iloc[0], regimes.iloc[1]
        assert under["ci_low"] > 0 and over["ci_high"] < 0
        assert regimes.iloc[2]["ci_low"] > 0 and regimes.iloc[3]["ci_high"] < 0  # the nominal split agrees in sign
        # the package's moderation: the interaction has the book's sign (edge 3)
        inter = dd_effects.moderation.set_index("regime").loc["interaction"]
        assert inter["ci_high"] < 0 and inter["verdict"] == "supports"
        # the reference cannot tell: edge 2 inconclusive in both regimes
        ref_mod = ref_effects.moderation.set_index("regime")
        assert (ref_mod.loc[["under", "over"], "verdict"] == "inconclusive").all()
    """),
]


NOTEBOOKS = {
    "01_tour": TOUR,
    "02_edges": EDGES,
    "03_mediation": MEDIATION,
    "04_graph_tests": GRAPH_TESTS,
    "05_double_descent": DOUBLE_DESCENT,
}


def build() -> list[Path]:
    written = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        })
        path = HERE / f"{name}.ipynb"
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in build():
        print(p)
