"""The runs table's schema: declared once, versioned, shared by writer and readers.

The generator (``runs_generator``) writes every parquet shard against
:data:`RUNS_SCHEMA` and stores :data:`SCHEMA_VERSION` plus the column list in the
file's key-value metadata; ``causal.load_runs`` validates against the same
declaration. ``causal`` never imports torch, so this module is pure Python.

Orientation of each column ("higher means ...") is the contract of
``../shared/DESIGN.md`` §2.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "SCHEMA_VERSION",
    "Dtype",
    "Role",
    "Column",
    "RUNS_SCHEMA",
    "COLUMNS",
    "column",
    "supervised_columns",
]

#: Bump the major part when a column changes meaning or type, the minor part when
#: columns are only added. Readers accept files of the same major version.
#: 2.0: in-distribution test set, probabilities for every classifier, convergence
#: against the best constant predictor, effective-step implicit_reg, unbiased
#: bias_sq, fixed-size Hessian subsample, ``diverged_step``, ``epochs``, and null
#: (never a floor or cap) where a value cannot be measured.
#: 2.1: the transfer family's ``source_task``, ``source_similarity`` and ``source_steps``.
#: 2.1 also: the generative family's ``mode_coverage`` and ``sample_loglik``; problem ``generation``.
SCHEMA_VERSION = "2.1"


class Dtype(str, Enum):
    FLOAT = "float64"
    INT = "int64"
    STRING = "string"


class Role(str, Enum):
    ID = "id"  # identifies a run
    LEVER = "lever"  # a randomized design lever (raw or oriented)
    CONTEXT = "context"  # a randomized data condition
    DERIVED = "derived"  # a deterministic function of other columns
    MEDIATOR = "mediator"
    OUTCOME = "outcome"
    PROVENANCE = "provenance"  # versions, device, timing: never analysed


class Scope(str, Enum):
    ALL = "all"  # every run carries it
    SUPERVISED = "supervised"  # supervised runs (teacher, mnist1d, ...)
    GENERATIVE = "generative"  # generative runs only
    OPTIONAL = "optional"  # may be absent or null


@dataclass(frozen=True)
class Column:
    """One column of the runs table.

    Attributes
    ----------
    name : str
        Column name in the parquet file and the DataFrame.
    dtype : Dtype
        Storage type. Integer columns hold 0/1 flags and counts.
    role : Role
        Lever, context, derived, mediator, outcome, id or provenance.
    scope : Scope
        Which runs must carry a non-null value.
    doc : str
        What the column means; for oriented columns, what *higher* means.
    nullable : bool
        Whether null/NaN is a legal value (e.g. ``deployment_risk`` on a task
        without subgroups).
    """

    name: str
    dtype: Dtype
    role: Role
    scope: Scope
    doc: str
    nullable: bool = False


F, I, S = Dtype.FLOAT, Dtype.INT, Dtype.STRING
_ALL, _SUP, _GEN, _OPT = Scope.ALL, Scope.SUPERVISED, Scope.GENERATIVE, Scope.OPTIONAL

RUNS_SCHEMA: tuple[Column, ...] = (
    # --- identity -----------------------------------------------------------------
    Column("run_id", S, Role.ID, _ALL, "unique run id: '<sweep seed>-<run index>'"),
    Column("seed", I, Role.ID, _ALL, "the run's own seed, derived from the sweep seed and run index"),
    Column("sweep_seed", I, Role.ID, _ALL, "seed of the sweep that produced the run"),
    Column("run_index", I, Role.ID, _ALL, "index of the run within its sweep"),
    # --- raw levers (as drawn) --------------------------------------------------
    Column("task", S, Role.LEVER, _ALL, "task family: teacher | mnist1d | sequence | graph | transfer | generative (runs_generator.registry.TASKS)"),
    Column("problem", S, Role.LEVER, _SUP, "classification | regression | generation (the generative family)"),
    Column("arch", S, Role.LEVER, _ALL, "architecture: mlp | cnn | transformer | gnn | vae | gan | flow | diffusion (runs_generator.registry.ARCHS)"),
    Column("width", I, Role.LEVER, _ALL, "hidden units (MLP) or channels (CNN) per hidden layer"),
    Column("depth", I, Role.LEVER, _ALL, "number of hidden layers"),
    Column("loss", S, Role.LEVER, _SUP, "training loss: cross_entropy | mse | l1; generative runs: the arch's "
           "objective, elbo (vae) | adversarial (gan) | nll (flow) | denoising (diffusion)"),
    Column("init_scale", F, Role.LEVER, _ALL, "initial weight std as a multiple of He std"),
    Column("lr", F, Role.LEVER, _ALL, "learning rate"),
    Column("batch_size", I, Role.LEVER, _ALL, "minibatch size actually used (= n_train when full_batch)"),
    Column("full_batch", I, Role.LEVER, _ALL, "1 when the batch_size lever was 'full'"),
    Column("n_train", I, Role.CONTEXT, _ALL, "training examples per replica"),
    Column("noise", F, Role.CONTEXT, _ALL, "label-noise fraction (classes) or noise std / signal std (regression)"),
    Column("noise_dist", S, Role.CONTEXT, _ALL, "regression noise distribution: gaussian | laplace"),
    Column("steps", I, Role.LEVER, _ALL, "optimizer steps per replica (the budget rule: epochs x n_train / batch, "
           "at least the space's minimum)"),
    Column("epochs", F, Role.LEVER, _ALL, "training budget in passes over the training set: steps x batch / n_train"),
    Column("replicas", I, Role.LEVER, _ALL, "K: replicas per run (independent training sets and inits)"),
    # --- oriented levers (DESIGN.md §2) -------------------------------------------
    Column("capacity", F, Role.LEVER, _ALL, "log10(trainable parameters)"),
    Column("inductive_bias", I, Role.LEVER, _ALL, "1 when the architecture's structure matches the data (CNN on mnist1d, transformer on sequence, GNN on graph), 0 for a plain MLP and for generative models"),
    Column("loss_matched", I, Role.LEVER, _SUP, "1 when the loss is the NLL of the right output distribution; "
           "generative runs: 1 for the likelihood objectives (flow NLL, VAE ELBO, diffusion's reweighted ELBO), "
           "0 for the GAN's game"),
    Column("init_quality", F, Role.LEVER, _ALL, "-abs(log2(init scale / He scale)); 0 is He initialization"),
    Column("optimizer", S, Role.LEVER, _ALL, "sgd | momentum | adam"),
    Column("log_lr", F, Role.LEVER, _ALL, "log10 learning rate"),
    Column("log_batch", F, Role.LEVER, _ALL, "log2 batch size"),
    Column("weight_decay", F, Role.LEVER, _ALL, "L2 weight-decay coefficient"),
    Column("dropout", F, Role.LEVER, _ALL, "dropout probability on hidden activations"),
    Column("label_smoothing", F, Role.LEVER, _ALL, "label-smoothing mass (classification; 0 for regression)"),
    Column("augmentation", I, Role.LEVER, _ALL, "1 when training inputs are augmented"),
    Column("early_stopping", I, Role.LEVER, _ALL, "1 when the checkpoint with the best validation loss is kept"),
    Column("pretrained", I, Role.LEVER, _OPT, "1 when the replicas start from a model trained on a related source "
           "task (hidden layers copied, head re-initialized); 0 on families without a source task", nullable=True),
    Column("source_task", S, Role.CONTEXT, _OPT, "transfer: the related source task the target is defined against "
           "(subspace_regression); null on other families", nullable=True),
    Column("source_similarity", F, Role.CONTEXT, _OPT, "transfer: similarity of the target to its source (the cosine "
           "between their label subspaces, 0 unrelated, 1 the same features); null on other families", nullable=True),
    Column("source_steps", I, Role.LEVER, _OPT, "transfer: training steps of the source model a pretrained run "
           "starts from; null on scratch runs and other families", nullable=True),
    Column("normalization", S, Role.LEVER, _ALL, "none | batch | layer"),
    Column("normalized", I, Role.LEVER, _ALL, "1 when normalization is batch or layer"),
    Column("residual", I, Role.LEVER, _ALL, "1 with residual connections"),
    Column("data_quantity", F, Role.CONTEXT, _ALL, "log10(training examples)"),
    Column("data_noise", F, Role.CONTEXT, _ALL, "label-noise fraction (classes) or noise std relative to signal std (regression)"),
    Column("overparam", F, Role.DERIVED, _ALL, "log10(parameters / (training examples x outputs))"),
    Column("overparameterized", I, Role.DERIVED, _ALL, "1 when overparam > 0"),
    # --- mediators ------------------------------------------------------------------
    # null = not measurable for the run: every post-training mediator and outcome of a
    # diverged run, gradient_stability of a one-hidden-layer network, the log of a
    # non-positive estimate (bias_sq below the replica noise, no positive curvature)
    Column("gradient_stability", F, Role.MEDIATOR, _SUP,
           "-abs(log10(|dL/da_1| / |dL/da_K|)) at init over the first and last hidden layers' pre-activations; "
           "0 is balanced; null for depth 1. Generative: on the training objective's path (VAE: encoder's first, "
           "decoder's last; GAN: the generator's, under the generator loss; null for the flow, whose couplings start "
           "as the identity, so no gradient reaches their hidden layers at init)",
           nullable=True),
    Column("sharpness", F, Role.MEDIATOR, _SUP,
           "log10 top Hessian eigenvalue of the training loss at the end of training (12 Lanczos steps on the first "
           "64 training examples of each replica, whatever n_train; generative: fixed noise draws); null if "
           "diverged or <= 0, and for the GAN (a game, no single objective)", nullable=True),
    Column("implicit_reg", F, Role.MEDIATOR, _SUP,
           "log10((1/4) mean over the last half of training of h*|grad L_batch|^2), h the effective step: lr (SGD), "
           "lr/(1-0.9) (momentum), Adam's preconditioned lr/(sqrt(v_hat)+eps) per coordinate; null if diverged "
           "and for the GAN", nullable=True),
    Column("bias_sq", F, Role.MEDIATOR, _SUP,
           "log10 unbiased bias^2: mean over in-distribution test inputs of |ensemble-mean prediction - clean "
           "target|^2 minus variance/K (classes: softmax probabilities vs one-hot); null if diverged or <= 0",
           nullable=True),
    Column("variance", F, Role.MEDIATOR, _SUP,
           "log10 mean over in-distribution test inputs of the variance of predictions across the K replicas "
           "(disjoint training sets); null if diverged", nullable=True),
    Column("convergence", F, Role.MEDIATOR, _SUP,
           "-log10(final train loss / best-constant-predictor loss), both in the evaluation loss (cross-entropy "
           "for classes, MSE for regression); null if diverged. Generative: flow and VAE, the log10 likelihood ratio "
           "per data axis over the best single Gaussian on the training set, (NLL_gauss - NLL_final)/(D ln 10) "
           "(the VAE's -ELBO bounds its NLL); diffusion, -log10(final denoising MSE / MSE of predicting eps = 0); "
           "both on the whole training set with fixed noise; null for the GAN", nullable=True),
    Column("diverged", I, Role.MEDIATOR, _SUP,
           "1 when any replica diverged (a non-finite loss or one above 1000x the initial loss)"),
    Column("diverged_step", I, Role.MEDIATOR, _OPT,
           "first step (1-based) at which a replica's minibatch loss was non-finite or above 1000x the initial "
           "loss (the step count if only the final loss showed it); null when not diverged", nullable=True),
    # --- outcomes -------------------------------------------------------------------
    Column("generalization", F, Role.OUTCOME, _SUP,
           "in-distribution test accuracy (classes) or test R^2 (regression, unclipped); null if diverged",
           nullable=True),
    Column("test_loss", F, Role.OUTCOME, _SUP,
           "in-distribution test loss in the evaluation loss (cross-entropy / MSE) on noisy targets; null if diverged",
           nullable=True),
    Column("test_error", F, Role.OUTCOME, _SUP,
           "in-distribution test error rate (classes) or MSE / target variance (regression); null if diverged",
           nullable=True),
    Column("gen_gap", F, Role.OUTCOME, _SUP,
           "test loss - training loss, both in the evaluation loss on the training mixture; null if diverged",
           nullable=True),
    Column("deployment_risk", F, Role.OUTCOME, _OPT,
           "worst-group minus best-group test error on a separate group-balanced test set; null if diverged",
           nullable=True),
    Column("ece", F, Role.OUTCOME, _OPT, "expected calibration error (classification, in-distribution, 15 bins); "
           "null if diverged or regression", nullable=True),
    # generative: 1,000 samples per replica against 1,000 held-out true samples (k = 5), replica means;
    # null for supervised runs and diverged ones
    Column("precision", F, Role.OUTCOME, _GEN, "k-NN manifold precision of generated samples (share inside the "
           "real samples' 5-NN balls)", nullable=True),
    Column("recall", F, Role.OUTCOME, _GEN, "k-NN manifold recall of generated samples (share of real samples "
           "inside the generated samples' 5-NN balls)", nullable=True),
    Column("coverage", F, Role.OUTCOME, _GEN, "coverage of the real data by generated samples (share of real "
           "5-NN balls holding a generated sample)", nullable=True),
    Column("density", F, Role.OUTCOME, _GEN, "density of generated samples in the real manifold (mean count of "
           "real 5-NN balls holding a sample / 5; about 1 when the distributions agree)", nullable=True),
    Column("mode_coverage", F, Role.OUTCOME, _GEN, "share of the true mixture's modes that receive at least 10% of "
           "their expected samples within 3 std", nullable=True),
    Column("sample_loglik", F, Role.OUTCOME, _GEN, "mean log-density (nats) of generated samples under the true "
           "mixture", nullable=True),
    # --- provenance -----------------------------------------------------------------
    Column("engine", S, Role.PROVENANCE, _ALL, "batched | naive"),
    Column("device", S, Role.PROVENANCE, _ALL, "torch device the run trained on"),
    Column("wall_time_s", F, Role.PROVENANCE, _ALL, "wall time attributed to the run (its share of its batch)"),
    Column("package_version", S, Role.PROVENANCE, _ALL, "udl-causal version"),
    Column("torch_version", S, Role.PROVENANCE, _ALL, "torch version"),
)

COLUMNS: dict[str, Column] = {c.name: c for c in RUNS_SCHEMA}


def column(name: str) -> Column:
    """Return the declared :class:`Column` called ``name``.

    Raises
    ------
    SchemaError
        If no such column is declared.
    """
    from causal.errors import SchemaError

    try:
        return COLUMNS[name]
    except KeyError:
        raise SchemaError(
            f"unknown column {name!r}: it is not declared in causal.schema.RUNS_SCHEMA "
            f"(schema {SCHEMA_VERSION}); declared columns: {', '.join(COLUMNS)}"
        ) from None


def supervised_columns() -> list[str]:
    """Names of the columns every supervised run must carry (non-null)."""
    return [c.name for c in RUNS_SCHEMA if c.scope in (Scope.ALL, Scope.SUPERVISED) and not c.nullable]
