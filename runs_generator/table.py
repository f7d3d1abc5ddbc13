"""One run -> one row of the runs table (every column of :mod:`causal.schema`).

The row carries the raw levers as drawn, the oriented columns of DESIGN.md §2,
the engine's mediators and outcomes, the run's identity and its provenance.
Values are cast to the schema's declared dtypes; a value that could not be
measured arrives as ``None`` (or NaN) and is written as null, never as a
placeholder. A non-nullable column that is missing or not finite is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from causal.errors import SchemaError
from causal.schema import RUNS_SCHEMA, Dtype, Scope
from runs_generator.registry import inductive_bias, loss_entry, task_family
from runs_generator.spec import RunConfig, RunMetrics, TaskData

__all__ = ["Provenance", "make_row", "oriented_columns"]


@dataclass(frozen=True)
class Provenance:
    """Where and how a run was produced (never analysed)."""

    engine: str
    device: str
    package_version: str
    torch_version: str
    sweep_seed: int


def _loss_matched(config: RunConfig) -> bool:
    """DESIGN.md §2: the loss is the NLL of the right output distribution (the loss's registry entry)."""
    return loss_entry(config.loss).matched(config.problem, config.noise_dist)


def oriented_columns(config: RunConfig, n_params: int, n_outputs: int) -> dict[str, Any]:
    """The oriented lever, context and derived columns of one run (DESIGN.md §2).

    Examples
    --------
    >>> from runs_generator.levers import SMALL_SPACE
    >>> cfg = SMALL_SPACE.draw(0, 0, SMALL_SPACE.overrides(fix={"init_scale": 0.25, "n_train": 100}))
    >>> cols = oriented_columns(cfg, n_params=1000, n_outputs=10)
    >>> cols["init_quality"], cols["capacity"], cols["overparam"], cols["overparameterized"]
    (-2.0, 3.0, 0.0, 0)
    """
    overparam = math.log10(n_params / (config.n_train * n_outputs))
    return {
        "capacity": math.log10(n_params),
        "inductive_bias": inductive_bias(config.task, config.arch),
        "loss_matched": int(_loss_matched(config)),
        "init_quality": -abs(math.log2(config.init_scale)),
        "log_lr": math.log10(config.lr),
        "log_batch": math.log2(config.effective_batch),
        "normalized": int(config.normalization != "none"),
        "data_quantity": math.log10(config.n_train),
        "data_noise": config.noise,
        "overparam": overparam,
        "overparameterized": int(overparam > 0),
        "pretrained": int(config.pretrained),  # 0 on every family without a source task (scratch by construction)
    }


def make_row(config: RunConfig, data: TaskData, metrics: RunMetrics, prov: Provenance) -> dict[str, Any]:
    """Build the schema row of one supervised run.

    Parameters
    ----------
    config : RunConfig
        The run's resolved levers.
    data : TaskData
        Its data (only ``n_outputs`` is used: classes or output dims).
    metrics : RunMetrics
        What the engine measured.
    prov : Provenance
        Engine, device, versions and the sweep seed.

    Returns
    -------
    dict
        Column name -> value for every column of ``causal.schema.RUNS_SCHEMA``,
        typed per the declared dtype (None for null).

    Raises
    ------
    SchemaError
        If a non-nullable column is missing or not finite (names the column and run).
    """
    row: dict[str, Any] = {
        "run_id": f"{prov.sweep_seed}-{config.run_index}",
        "seed": config.seed,
        "sweep_seed": prov.sweep_seed,
        "run_index": config.run_index,
        "task": config.task,
        "problem": config.problem,
        "arch": config.arch,
        "width": config.width,
        "depth": config.depth,
        "loss": config.loss,
        "init_scale": config.init_scale,
        "lr": config.lr,
        "batch_size": config.effective_batch,
        "full_batch": int(config.batch_size is None),
        "n_train": config.n_train,
        "noise": config.noise,
        "noise_dist": config.noise_dist,
        "steps": config.steps,
        "epochs": config.epochs,
        "replicas": config.replicas,
        "optimizer": config.optimizer,
        "weight_decay": config.weight_decay,
        "dropout": config.dropout,
        "label_smoothing": config.label_smoothing,
        "augmentation": int(config.augmentation),
        "early_stopping": int(config.early_stopping),
        "normalization": config.normalization,
        "residual": int(config.residual),
        **oriented_columns(config, metrics.n_params, data.n_outputs),
        # transfer: the target's source task (null on families without one); its budget only when pretrained
        "source_task": task_family(config.task).source_task or None,
        "source_similarity": config.source_similarity,
        "source_steps": config.source_steps,
        "gradient_stability": metrics.gradient_stability,
        "sharpness": metrics.sharpness,
        "implicit_reg": metrics.implicit_reg,
        "bias_sq": metrics.bias_sq,
        "variance": metrics.variance,
        "convergence": metrics.convergence,
        "diverged": int(metrics.diverged),
        "diverged_step": metrics.diverged_step,
        "generalization": metrics.generalization,
        "test_loss": metrics.test_loss,
        "test_error": metrics.test_error,
        "gen_gap": metrics.gen_gap,
        "deployment_risk": metrics.deployment_risk,
        "ece": metrics.ece,
        # generative-only outcomes: null for supervised runs (RunMetrics leaves them None)
        "precision": metrics.precision,
        "recall": metrics.recall,
        "coverage": metrics.coverage,
        "density": metrics.density,
        "mode_coverage": metrics.mode_coverage,
        "sample_loglik": metrics.sample_loglik,
        "engine": prov.engine,
        "device": prov.device,
        "wall_time_s": metrics.wall_time_s,
        "package_version": prov.package_version,
        "torch_version": prov.torch_version,
    }
    return _typed(row, config.run_index)


def _typed(row: dict[str, Any], run_index: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in RUNS_SCHEMA:
        if col.name not in row:
            raise SchemaError(f"run {run_index}: the row builder has no value for column {col.name!r}")
        value = row[col.name]
        if value is not None and col.dtype is Dtype.FLOAT:
            value = float(value)
            if math.isnan(value) and col.nullable:  # not measurable: null, never a placeholder
                value = None
            elif math.isinf(value):
                raise SchemaError(f"run {run_index}: column {col.name!r} got {value!r}; an infinite value is never a "
                                  "measurement (the engine reports what it cannot measure as None)")
        elif value is not None and col.dtype is Dtype.INT:
            value = int(value)
        elif value is not None:
            value = str(value)
        required = not col.nullable and col.scope in (Scope.ALL, Scope.SUPERVISED)
        if required and (value is None or (isinstance(value, float) and not math.isfinite(value))):
            raise SchemaError(
                f"run {run_index}: column {col.name!r} must be a finite {col.dtype.value} value, got {row[col.name]!r}; "
                "only columns declared nullable may be null"
            )
        out[col.name] = value
    extra = sorted(set(row) - {c.name for c in RUNS_SCHEMA})
    if extra:
        raise SchemaError(f"run {run_index}: columns {extra} are not declared in causal.schema.RUNS_SCHEMA")
    return out
