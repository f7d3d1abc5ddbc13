"""A simulator that looks like a real sweep: raw levers, computed columns, design confounding.

:func:`simulate_sweep` draws a runs table the way the generator does
(``runs_generator.levers``): raw levers are randomized (``task``, ``problem``,
``arch``, ``width``, ``depth``, ``loss``, ``init_scale``, ``lr``, batch size,
``n_train``, ``noise``, ``noise_dist``, ``epochs`` ...) and resolved like the
generator resolves them (mnist1d is classification, a CNN only on mnist1d,
label smoothing 0 for regression, batch capped at ``n_train``); the book's
columns are *computed* from them (``capacity`` from width, depth, arch and the
task's inputs/outputs; ``inductive_bias``; ``loss_matched``; ``init_quality`` =
-|log2 init_scale|; ``log_batch``; ...). Then, unlike the book's graph:

* raw levers act on mediators directly (depth on gradient stability and
  sharpness, the signed init scale and the epoch budget on convergence, the loss on
  sharpness and variance, the task and the problem on bias² and variance);
* mediators are nonlinear in the levers: sharpness saturates in the learning
  rate (tanh), gradient stability has the |log| shape of ``init_quality``,
  implicit regularization saturates in depth;
* a fraction of runs diverge (``diverged = 1``, more often at high learning
  rate and bad init): their mediators and outcomes are null or capped
  placeholders, as in schema 1.0 tables; ``gradient_stability`` is null at
  depth 1 (schema 2.0); training length follows schema 2.0's budget rule
  (``epochs`` drawn, ``steps`` computed from it, ``n_train`` and the batch);
* effects differ across ``task`` (``residual → gradient_stability`` is larger
  on teacher, ``normalization_batch → sharpness`` flips sign, generalization
  has a different level and noise per task).

Every book edge's structural equation stays linear in its book parents, so it
has one true direct effect per task; :attr:`SweepSimulation.true_effects`
gives the task-average (``coefficient``, what a pooled fit estimates: tasks are
equally likely and the treatments are randomized independently of them) and
the per-task values. ``nonlinear_confounding=True`` adds a nonlinear lever
effect shared by a mediator and its child (where linear adjustment is biased
and double ML is not).

Examples
--------
>>> sim = simulate_sweep(500, seed=0)
>>> bool(sim.data["diverged"].mean() > 0), "task" in sim.data
(True, True)
>>> round(sim.coefficient("capacity", "bias_sq"), 2)
-0.6
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from causal.errors import ConfigError
from causal.graph import BOOK_DAG

__all__ = ["SweepSimulation", "simulate_sweep", "TASKS"]

TASKS = ("teacher", "mnist1d")

# true direct effects of the book's column edges: (treatment, outcome) -> {task: coefficient}
_B = {
    ("capacity", "bias_sq"): -0.6,
    ("capacity", "variance"): 0.5,
    ("bias_sq", "generalization"): -0.4,
    ("variance", "generalization"): -0.3,
    ("data_quantity", "variance"): -0.8,
    ("weight_decay", "variance"): -60.0,
    ("dropout", "variance"): -1.5,
    ("label_smoothing", "variance"): -3.0,
    ("augmentation", "variance"): -0.4,
    ("early_stopping", "variance"): -0.3,
    ("weight_decay", "bias_sq"): 50.0,
    ("dropout", "bias_sq"): 1.0,
    ("label_smoothing", "bias_sq"): 2.0,
    ("augmentation", "bias_sq"): 0.3,
    ("early_stopping", "bias_sq"): 0.4,
    ("init_quality", "gradient_stability"): 0.7,
    ("gradient_stability", "convergence"): 0.5,
    ("residual", "gradient_stability"): {"teacher": 1.0, "mnist1d": 0.4},
    ("normalization_batch", "gradient_stability"): 0.6,
    ("normalization_layer", "gradient_stability"): 0.4,
    ("normalization_batch", "sharpness"): {"teacher": -0.8, "mnist1d": 0.3},
    ("normalization_layer", "sharpness"): -0.4,
    ("residual", "sharpness"): -0.5,
    ("sharpness", "convergence"): -0.5,
    ("convergence", "generalization"): 0.4,
    ("optimizer_momentum", "implicit_reg"): 0.3,
    ("optimizer_adam", "implicit_reg"): -0.5,
    ("log_lr", "implicit_reg"): 0.8,
    ("log_batch", "implicit_reg"): -0.3,
    ("implicit_reg", "variance"): -0.4,
    ("loss_matched", "convergence"): 0.6,
    ("inductive_bias", "variance"): -0.5,
    ("inductive_bias", "bias_sq"): -0.4,
    ("data_noise", "generalization"): -1.0,
    ("generalization", "deployment_risk"): -0.5,
    ("data_quantity", "deployment_risk"): -0.3,
    ("sharpness", "generalization"): -0.2,
}
_D_IN = {"teacher": 20, "mnist1d": 40}


@dataclass(frozen=True)
class SweepSimulation:
    """A simulated sweep and its truth.

    Attributes
    ----------
    data : pandas.DataFrame
        The runs table (raw levers, book columns, ``diverged``).
    true_effects : pandas.DataFrame
        One row per book column edge: ``treatment``, ``outcome``, ``number``,
        ``coefficient`` (task average), ``coef_teacher``, ``coef_mnist1d``.
    seed : int
    """

    data: pd.DataFrame
    true_effects: pd.DataFrame
    seed: int

    def coefficient(self, treatment: str, outcome: str, task: str | None = None) -> float:
        """True direct effect of ``treatment → outcome`` (task average, or in ``task``)."""
        row = self.true_effects[(self.true_effects["treatment"] == treatment)
                                & (self.true_effects["outcome"] == outcome)]
        if row.empty:
            raise KeyError(f"{treatment} → {outcome} is not a simulated book edge")
        return float(row.iloc[0]["coefficient" if task is None else f"coef_{task}"])

    def total_effect(self, source: str, target: str, task: str | None = None) -> float:
        """Total effect along the book's edges (design paths excluded): task average, or in ``task``."""
        import networkx as nx

        col = "coefficient" if task is None else f"coef_{task}"
        g = nx.DiGraph()
        for r in self.true_effects.itertuples(index=False):
            g.add_edge(r.treatment, r.outcome, b=getattr(r, col))
        if source not in g or target not in g:
            return 0.0
        return float(sum(np.prod([g.edges[u, v]["b"] for u, v in zip(p[:-1], p[1:])])
                         for p in nx.all_simple_paths(g, source, target)))

    def in_fit_units(self, treatment: str, outcome: str, units: pd.DataFrame, *,
                     fit: Any = None, total: bool = False) -> float:
        """The truth of ``treatment → outcome`` in the units a pooled fit estimates it in.

        ``generalization``, ``data_noise`` and ``deployment_risk`` mix problems
        here, so the analysis z-scores them within each task × problem family
        (:mod:`causal.units`; ``units`` is the analysis' table of family means
        and sds). A family's truth is then ``b_task × sd_t / sd_o`` (an sd only
        for a standardized column), and a pooled OLS slope averages the
        families with weights ``Σ residual(t)²``: computed from ``fit`` (the
        :class:`~causal.edges.EdgeEffects` whose adjustment set is used), else
        rows per family. ``total=True``: the total effect along the book's
        edges instead of the direct one.
        """
        sd = {(r.column, r.family): r.sd for r in units.itertuples(index=False)} if len(units) else {}
        scaled = {c for c, _ in sd}
        if treatment not in scaled and outcome not in scaled:
            return self.total_effect(treatment, outcome) if total else self.coefficient(treatment, outcome)
        fams = sorted({f for c, f in sd if c in (treatment, outcome)})
        fams = [f for f in fams if all((c, f) in sd for c in (treatment, outcome) if c in scaled)]
        weights = (self._residual_weights(treatment, outcome, fit) if fit is not None else
                   {f: float(units.loc[units["family"] == f, "n"].min()) for f in fams})
        num = den = 0.0
        for f in fams:
            task = f.split("/")[0]
            b = self.total_effect(treatment, outcome, task) if total else self.coefficient(treatment, outcome, task)
            b = b * sd.get((treatment, f), 1.0) / sd.get((outcome, f), 1.0)
            num, den = num + weights.get(f, 0.0) * b, den + weights.get(f, 0.0)
        return num / den

    def _residual_weights(self, treatment: str, outcome: str, fit: Any) -> dict[str, float]:
        from causal.prepare import prepare
        from causal.units import families

        prep = prepare(self.data, fit.graph, adjust=fit.config.adjust, diverged=fit.config.diverged)
        adj = [c for c in str(fit.effect(treatment, outcome)["adjustment"]).split(",") if c]
        frame = prep.numeric[[treatment, outcome, *adj]].dropna()
        x = np.column_stack([np.ones(len(frame)), frame[adj].to_numpy()])
        t = frame[treatment].to_numpy()
        r = t - x @ np.linalg.lstsq(x, t, rcond=None)[0]
        fam = families(prep.data).loc[frame.index].to_numpy()
        return {str(f): float((r[fam == f] ** 2).sum()) for f in np.unique(fam)}


def _coef(key: tuple[str, str], task: np.ndarray) -> np.ndarray | float:
    b = _B[key]
    if isinstance(b, dict):
        return np.where(task == "teacher", b["teacher"], b["mnist1d"])
    return b


def simulate_sweep(n: int, seed: int = 0, *, diverged_fraction: float = 0.06, placeholders: bool = True,
                   nonlinear_confounding: bool = False, shift: dict[tuple[str, str], float] | None = None
                   ) -> SweepSimulation:
    """Draw ``n`` runs of a sweep-like table with known direct effects.

    Parameters
    ----------
    n : int
    seed : int
        Seeds one ``numpy.random.Generator``; same arguments, same table.
    diverged_fraction : float
        Approximate share of diverged runs (0 for none).
    placeholders : bool
        Diverged runs carry capped placeholder values in ``convergence``,
        ``implicit_reg`` and ``generalization`` (schema 1.0 style; nulls
        elsewhere). False: nulls everywhere (schema 2.0 style).
    nonlinear_confounding : bool
        Sharpness and convergence also share a U-shaped effect of the
        learning rate: the sharpness → convergence edge is then confounded
        nonlinearly (linear adjustment for ``log_lr`` cannot remove it).
    shift : mapping, optional
        Add to the true coefficient of some edges (an "altered generator").

    Returns
    -------
    SweepSimulation
    """
    if n < 10:
        raise ConfigError(f"n must be at least 10, got {n}")
    if not 0 <= diverged_fraction < 0.5:
        raise ConfigError(f"diverged_fraction must lie in [0, 0.5), got {diverged_fraction}")
    shift = dict(shift or {})
    unknown = set(shift) - set(_B)
    if unknown:
        raise ConfigError(f"shift: unknown edge(s) {sorted(unknown)}; choose among the book's column edges")
    rng = np.random.default_rng(seed)
    choice = lambda values, size=n: rng.choice(np.asarray(values, dtype=object), size=size)  # noqa: E731
    task = choice(TASKS).astype(str)
    problem = np.where(task == "mnist1d", "classification", choice(("classification", "regression")).astype(str))
    arch = np.where(task == "mnist1d", choice(("mlp", "cnn")).astype(str), "mlp")
    width = choice((16, 32, 64)).astype(int)
    width = np.where(arch == "cnn", width // 4, width)
    depth = choice((1, 2, 3, 4)).astype(int)
    u_loss = rng.random(n)
    loss = np.where(problem == "classification",
                    np.array(["cross_entropy", "mse", "l1"])[np.minimum((u_loss * 3).astype(int), 2)],
                    np.array(["mse", "l1"])[np.minimum((u_loss * 2).astype(int), 1)])
    init_scale = 2.0 ** rng.uniform(-2, 2, n)
    optimizer = choice(("sgd", "momentum", "adam")).astype(str)
    lr = 10 ** rng.uniform(-3, np.log10(0.3), n)
    batch = choice((16, 32, 64, 128, 0)).astype(int)  # 0: full batch
    n_train = choice((64, 128, 256, 512)).astype(int)
    full_batch = (batch == 0).astype(int)
    eff_batch = np.where(batch == 0, n_train, np.minimum(batch, n_train))
    weight_decay = np.where(rng.random(n) < 0.5, 0.0, 10 ** rng.uniform(-5, -2, n))
    dropout = choice((0.0, 0.1, 0.3)).astype(float)
    label_smoothing = np.where(problem == "regression", 0.0, choice((0.0, 0.1)).astype(float))
    augmentation = rng.integers(0, 2, n)
    early_stopping = rng.integers(0, 2, n)
    normalization = choice(("none", "batch", "layer")).astype(str)
    residual = rng.integers(0, 2, n)
    noise = choice((0.0, 0.1, 0.2, 0.3)).astype(float)
    noise_dist = np.where(problem == "regression", choice(("gaussian", "laplace")).astype(str), "gaussian")
    epochs = choice((20.0, 50.0)).astype(float)
    # schema 2.0's budget rule: steps follow from the epochs drawn, n_train and the batch size
    steps = np.maximum(100, np.ceil(epochs * n_train / eff_batch)).astype(int)

    d_in = np.where(task == "mnist1d", 40, 20)
    d_out = np.where(task == "mnist1d", 10, np.where(problem == "regression", 1, 4))
    params = np.where(arch == "cnn", 3 * width + (depth - 1) * 3 * width**2 + width * 10 * d_out,
                      d_in * width + (depth - 1) * width**2 + width * d_out)
    col = {
        "capacity": np.log10(params),
        "inductive_bias": ((arch == "cnn") & (task == "mnist1d")).astype(int),
        "loss_matched": np.where(problem == "classification", loss == "cross_entropy",
                                 ((loss == "mse") & (noise_dist == "gaussian"))
                                 | ((loss == "l1") & (noise_dist == "laplace"))).astype(int),
        "init_quality": -np.abs(np.log2(init_scale)),
        "log_lr": np.log10(lr),
        "log_batch": np.log2(eff_batch),
        "data_quantity": np.log10(n_train),
        "data_noise": noise,
        "optimizer_momentum": (optimizer == "momentum").astype(float),
        "optimizer_adam": (optimizer == "adam").astype(float),
        "normalization_batch": (normalization == "batch").astype(float),
        "normalization_layer": (normalization == "layer").astype(float),
        "weight_decay": weight_decay, "dropout": dropout, "label_smoothing": label_smoothing,
        "augmentation": augmentation.astype(float), "early_stopping": early_stopping.astype(float),
        "residual": residual.astype(float),
    }
    e = lambda sd=0.5: sd * rng.standard_normal(n)  # noqa: E731
    mnist = (task == "mnist1d").astype(float)
    regression = (problem == "regression").astype(float)

    def book(outcome: str) -> np.ndarray:
        out = np.zeros(n)
        for (t, o) in _B:
            if o == outcome:
                out = out + (_coef((t, o), task) + shift.get((t, o), 0.0)) * col[t]
        return out

    lr_shape = np.tanh(2.0 * (col["log_lr"] + 1.5))  # saturating in the learning rate
    col["gradient_stability"] = book("gradient_stability") - 0.3 * depth + 0.2 * np.log2(init_scale) + e()
    col["sharpness"] = book("sharpness") + 0.6 * lr_shape + 0.15 * depth + 0.3 * mnist - 0.3 * (loss == "l1") + e()
    col["implicit_reg"] = book("implicit_reg") + 0.4 * np.tanh(depth - 2.5) + 0.2 * np.log2(epochs) + 0.2 * mnist + e()
    col["bias_sq"] = book("bias_sq") + 0.5 * regression + 0.3 * mnist + 0.1 * depth + e()
    col["variance"] = (book("variance") + 0.3 * (loss == "l1") + 0.4 * mnist + 0.1 * depth
                       + 0.2 * col["log_lr"] + e())
    col["convergence"] = (book("convergence") + 0.5 * np.log2(epochs) + 0.25 * np.log2(init_scale) + 0.2 * depth
                          + 0.2 * regression + e())
    if nonlinear_confounding:  # a U-shaped lr effect shared by sharpness and its child convergence
        bump = 1.5 * (lr_shape**2 - 0.5)
        col["sharpness"] = col["sharpness"] + bump
        col["convergence"] = col["convergence"] + bump
    # generalization is R² or accuracy: another level and spread per task
    col["generalization"] = book("generalization") + 0.3 * regression + 0.5 * mnist + np.where(mnist > 0, e(0.15), e(0.3))
    col["deployment_risk"] = np.where(task == "teacher", book("deployment_risk") + e(0.3), np.nan)

    # divergence: high learning rate with a bad init, from the levers only
    logit = 3.0 * (col["log_lr"] + 0.9) + 1.5 * (np.abs(np.log2(init_scale)) - 1.2) - 0.5 * (optimizer == "adam")
    cut = np.quantile(logit + rng.logistic(size=n), 1 - diverged_fraction) if diverged_fraction > 0 else np.inf
    diverged = (logit + rng.logistic(size=n) > cut).astype(int)
    div = diverged == 1
    # gradient_stability is measured at initialization: valid for diverged runs too, null at depth 1
    col["gradient_stability"] = np.where(depth == 1, np.nan, col["gradient_stability"])
    for c in ("sharpness", "bias_sq", "variance", "deployment_risk"):
        col[c] = np.where(div, np.nan, col[c])
    if placeholders:  # capped values a naive analysis reads as data
        col["convergence"] = np.where(div, -3.0, col["convergence"])
        col["implicit_reg"] = np.where(div, 4.0, col["implicit_reg"])
        col["generalization"] = np.where(div, 0.0, col["generalization"])
    else:
        for c in ("convergence", "implicit_reg", "generalization"):
            col[c] = np.where(div, np.nan, col[c])

    data = pd.DataFrame({
        "run_id": [f"sweep{seed}-{i}" for i in range(n)],
        "task": pd.array(task, dtype="string"), "problem": pd.array(problem, dtype="string"),
        "arch": pd.array(arch, dtype="string"), "width": width.astype("int64"), "depth": depth.astype("int64"),
        "loss": pd.array(loss, dtype="string"), "init_scale": init_scale, "lr": lr,
        "batch_size": eff_batch.astype("int64"), "full_batch": full_batch.astype("int64"),
        "n_train": n_train.astype("int64"), "noise": noise, "noise_dist": pd.array(noise_dist, dtype="string"),
        "steps": steps.astype("int64"), "epochs": epochs, "replicas": np.full(n, 4, dtype="int64"),
        "optimizer": pd.array(optimizer, dtype="string"), "normalization": pd.array(normalization, dtype="string"),
        "normalized": (normalization != "none").astype("int64"), "pretrained": np.zeros(n, dtype="int64"),
        "overparam": np.log10(params / (n_train * d_out)),
        **{k: np.asarray(v, dtype="float64") for k, v in col.items()},
        "diverged": diverged.astype("int64"),
    })
    for c in ("inductive_bias", "loss_matched", "augmentation", "early_stopping", "residual"):
        data[c] = data[c].astype("int64")
    data["overparameterized"] = (data["overparam"] > 0).astype("int64")
    rows = []
    numbers = {(ce.treatment, ce.outcome): ce.number for ce in BOOK_DAG.column_edges()}
    for (t, o), b in _B.items():
        per = b if isinstance(b, dict) else {"teacher": b, "mnist1d": b}
        per = {k: v + shift.get((t, o), 0.0) for k, v in per.items()}
        avg = float(np.mean(list(per.values())))
        if o == "deployment_risk":  # measured on teacher only
            avg = per["teacher"]
        rows.append({"treatment": t, "outcome": o, "number": numbers.get((t, o), 0), "coefficient": avg,
                     "coef_teacher": per["teacher"], "coef_mnist1d": per["mnist1d"]})
    truth = pd.DataFrame(rows).sort_values(["number", "treatment", "outcome"], ignore_index=True)
    return SweepSimulation(data, truth, seed)
