"""Edge 18 (implicit_reg -> variance) on the shipped reference: does extra adjustment explain its + sign?

Usage::

    python benchmarks/edge18_check.py [DATA]   # default data/reference

Refits the edge by hand with statsmodels OLS (HC3) on the supervised runs that trained, adjusting for the
levers the design fit uses (``fit_edges(...).effect("implicit_reg", "variance")["adjustment"]``, written here
as raw columns and categorical dummies), then adds the other mediators one at a time. If the + sign came from
runs that were still far from converged (large h||g||^2 late in training, replicas far apart), adjusting for
``convergence`` would shrink it. Prints the implicit_reg coefficient with its 95% CI for each model, and the
within-task correlation of implicit_reg with convergence. Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np  # noqa: F401  (used inside the formulas)
import statsmodels.formula.api as smf

import causal

LEVERS = ("augmentation + capacity + data_noise + data_quantity + dropout + early_stopping + inductive_bias"
          " + init_quality + label_smoothing + log_batch + log_lr + loss_matched + pretrained + residual"
          " + weight_decay + depth + np.log2(epochs) + full_batch + np.log2(init_scale) + np.log2(width)")
CATEGORIES = "C(normalization) + C(optimizer) + C(arch) + C(loss) + C(noise_dist) + C(problem) + C(task)"


def main() -> None:
    warnings.filterwarnings("ignore")
    runs = causal.load_runs(sys.argv[1] if len(sys.argv) > 1 else "data/reference")
    ok = runs[(runs["diverged"] == 0) & (runs["task"] != "generative")]
    d = ok.dropna(subset=["variance", "implicit_reg", "convergence", "sharpness"])
    base = f"variance ~ implicit_reg + {LEVERS} + {CATEGORIES}"
    for extra in ["", " + convergence", " + sharpness", " + convergence + sharpness"]:
        m = smf.ols(base + extra, d).fit(cov_type="HC3")
        lo, hi = m.conf_int().loc["implicit_reg"]
        print(f"{extra or ' (design set only)':28s} n={int(m.nobs)}  implicit_reg {m.params['implicit_reg']:+.3f} "
              f"[{lo:+.3f}, {hi:+.3f}]")
    corr = d.groupby("task")[["implicit_reg", "convergence"]].corr().unstack().iloc[:, 1]
    print("corr(implicit_reg, convergence) by task:", corr.round(2).to_dict())


if __name__ == "__main__":
    main()
