"""``udl generate``, ``udl status`` and ``udl compact``: sweeps of training runs as parquet shards.

Registration only parses arguments; torch, the engine and the cluster
libraries load inside the handlers, so ``udl --version`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` command to the ``udl`` dispatcher."""
    from runs_generator.levers import SPACES  # numpy and the registry only: no torch at parse time

    workers = max(1, min(2, os.cpu_count() or 1))  # = sweep.default_workers(), without importing it
    p = subparsers.add_parser(
        "generate",
        help="generate a randomized sweep of training runs (one parquet row per run)",
        description=(
            "Draw every design lever independently per run, train each run's K replicas, and write "
            "parquet shards plus _sweep.json into --out. Rerunning the same command resumes."
        ),
    )
    p.add_argument("--runs", type=int, required=True, help="number of runs (rows)")
    p.add_argument("--seed", type=int, required=True, help="sweep seed")
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--shard-size", type=int, default=128, help="runs per shard file (default 128)")
    p.add_argument("--workers", type=int, default=workers,
                   help="worker processes (default min(2, cpu count) = %(default)s); 1 trains in-process")
    p.add_argument("--engine", choices=("batched", "naive"), default="batched", help="training engine")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="torch device")
    p.add_argument("--pad-widths", choices=("auto", "on", "off"), default="auto",
                   help="train MLP/CNN runs that differ only in width as one computation padded to the widest: "
                        "'auto' (default) on CUDA only, where small models are launch-bound; rows do not depend "
                        "on it")
    p.add_argument("--replicas", type=int, default=4, help="K replicas per run (default 4)")
    p.add_argument("--space", choices=tuple(SPACES), default="small",
                   help="lever space: 'small' (default; fast, tests and CPU demos), 'large' (the two-family "
                        "reference: teacher and MNIST-1D, n_train 1,024-4,000, 25-100 epochs), 'all' (every "
                        "family: teacher, MNIST-1D, sequence, graph, transfer and generative, each with its own "
                        "architectures, sizes and learning rates; the shipped reference), 'generative' (VAE, GAN, "
                        "flow and diffusion on a 2-D Gaussian mixture) or 'transfer' (the transfer family beside "
                        "the teacher one: pretrained vs scratch at few labels); runs_generator.levers.SPACES "
                        "defines them")
    p.add_argument("--fix", action="append", default=[], metavar="LEVER=VALUE",
                   help="hold a lever constant (repeatable), e.g. --fix optimizer=adam")
    p.add_argument("--vary", action="append", default=[], metavar="LEVER=V1,V2",
                   help="cycle a lever over values, runs spread evenly (repeatable), e.g. --vary optimizer=sgd,adam")
    p.add_argument("--shards", metavar="I/N", default=None,
                   help="run only slice I of N (0-based): shards s with s %% N == I; slices may run anywhere, "
                        "in any order, into one --out, e.g. --shards $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")
    p.add_argument("--backend", choices=_BACKENDS, default="local",
                   help="where shards train: 'local' (default; the --workers process pool), 'slurm' (submitit job "
                        "arrays) or 'ray' (a Ray cluster)")
    p.add_argument("--retries", type=int, default=2,
                   help="retries of a shard that raises before it counts as failed (default 2); errors and "
                        "tracebacks go to OUT/_failures/")
    g = p.add_argument_group("--backend slurm (pip install 'udl-causal[slurm]')")
    g.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    g.add_argument("--gpus-per-task", type=int, default=None, help="GPUs per array task (default 1)")
    g.add_argument("--cpus-per-task", type=int, default=None, help="CPUs per array task (default 2)")
    g.add_argument("--time-min", type=int, default=None,
                   help="time limit per array task in minutes (default 240); a task that hits it is requeued")
    g.add_argument("--array-parallelism", type=int, default=None, help="most array tasks at once (default 64)")
    g.add_argument("--shards-per-task", type=int, default=None, help="shards each array task runs in turn (default 1)")
    g.add_argument("--max-requeues", type=int, default=None,
                   help="requeues of a task after preemption or timeout (default 3)")
    g.add_argument("--no-wait", action="store_true",
                   help="return after submitting the array; follow it with `udl status OUT`")
    g = p.add_argument_group("--backend ray (pip install 'udl-causal[ray]')")
    g.add_argument("--address", default=None,
                   help="an existing Ray cluster ('auto', 'ray://HOST:10001'); default: start a local one")
    g.add_argument("--gpus-per-shard", type=float, default=None,
                   help="GPUs each shard reserves; a fraction (e.g. 0.25) shares a GPU (default 0)")
    g.add_argument("--cpus-per-shard", type=float, default=None, help="CPUs each shard reserves (default 1)")
    p.set_defaults(func=_generate)

    p = subparsers.add_parser(
        "status",
        help="done, missing and failed shards of a sweep directory",
        description="Compare a sweep directory's shard plan (_sweep.json) with its files: shards done, missing "
                    "and failed (with each failure's last error; tracebacks are in DIR/_failures/).",
    )
    p.add_argument("dir", metavar="DIR", help="the --out directory of `udl generate`")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=_status)

    p = subparsers.add_parser(
        "compact",
        help="merge a finished sweep's shards into a few large parquet files",
        description="Merge a finished sweep's shard files into part-*.parquet files of whole shards, checking "
                    "that every planned run is there exactly once, and swap them in atomically: a reader sees "
                    "the old files or the new ones, never both. `udl generate` and `udl status` keep working.",
    )
    p.add_argument("dir", metavar="DIR", help="the --out directory of a finished `udl generate`")
    p.add_argument("--max-rows", type=int, default=200_000, help="most rows per file (default 200000)")
    p.set_defaults(func=_compact)


_BACKENDS = ("local", "slurm", "ray")  # = backends.BACKENDS, without importing it
_SLURM_ARGS = ("partition", "gpus_per_task", "cpus_per_task", "time_min", "array_parallelism", "shards_per_task",
               "max_requeues")
_RAY_ARGS = ("address", "gpus_per_shard", "cpus_per_shard")


def _backend(args: argparse.Namespace):
    from causal.errors import ConfigError
    from runs_generator.backends import RayBackend, SlurmBackend

    own = {"slurm": _SLURM_ARGS + ("no_wait",), "ray": _RAY_ARGS}.get(args.backend, ())
    stray = [a for a in _SLURM_ARGS + _RAY_ARGS + ("no_wait",)
             if a not in own and getattr(args, a) not in (None, False)]
    if stray:
        flags = ", ".join("--" + a.replace("_", "-") for a in stray)
        raise ConfigError(f"{flags} do(es) not apply to --backend {args.backend}; drop it or choose the backend it "
                          "belongs to (see udl generate --help)")
    if args.backend == "slurm":
        kw = {a: getattr(args, a) for a in _SLURM_ARGS if getattr(args, a) is not None}
        return SlurmBackend(**kw, wait=not args.no_wait)
    if args.backend == "ray":
        return RayBackend(**{a: getattr(args, a) for a in _RAY_ARGS if getattr(args, a) is not None})
    return "local"


def _generate(args: argparse.Namespace) -> int:
    from causal.errors import ConfigError
    from runs_generator.levers import get_space, parse_assignment
    from runs_generator.sweep import ShardsFailed, SweepConfig, run_sweep

    fix, vary = {}, {}
    for text in args.fix:
        name, value = parse_assignment(text, multi=False)
        if name in fix:
            raise ConfigError(f"--fix {name} given twice ({fix[name]!r} and {value!r}); give it once")
        fix[name] = value
    for text in args.vary:
        name, values = parse_assignment(text, multi=True)
        if name in vary:
            raise ConfigError(f"--vary {name} given twice; list all its values in one --vary {name}=V1,V2")
        vary[name] = values
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    cfg = SweepConfig(
        runs=args.runs, seed=args.seed, out=args.out, shard_size=args.shard_size, workers=args.workers,
        engine=args.engine, device=args.device, replicas=args.replicas,
        overrides=get_space(args.space).overrides(fix, vary), space=args.space,
        pad_widths={"auto": None, "on": True, "off": False}[args.pad_widths],
    )
    backend = _backend(args)
    try:
        res = run_sweep(cfg, shards=args.shards, backend=backend, retries=args.retries)
    except ShardsFailed as exc:
        print(f"udl generate: error: {exc}", file=sys.stderr)
        return 1
    if res.submitted_shards:
        print(f"udl generate: submitted {res.submitted_shards} shard(s) of {res.out}; follow them with "
              f"`udl status {res.out}` and rerun this command to resume any that did not finish")
        return 0
    where = f" (slice {args.shards}: {res.selected_shards} shards)" if args.shards else ""
    print(
        f"udl generate: {res.runs} runs in {res.shards} shard(s) at {res.out}{where}: wrote {res.written_runs} runs "
        f"({res.written_shards} shards), skipped {res.skipped_runs} already done ({res.skipped_shards} shards) "
        f"in {res.wall_time_s:.1f} s"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    import json

    from runs_generator.sweepdir import status

    st = status(args.dir)
    print(json.dumps(st.as_json(), indent=1) if args.json else st.summary())
    return 0


def _compact(args: argparse.Namespace) -> int:
    from runs_generator.sweepdir import compact

    res = compact(args.dir, max_rows=args.max_rows)
    how = "one atomic directory exchange" if res.atomic else "two renames (no atomic exchange on this filesystem)"
    print(f"udl compact: {res.out}: {res.rows} rows from {res.files_before} file(s) into {res.files_after} "
          f"file(s), swapped in by {how}")
    return 0
