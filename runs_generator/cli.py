"""``udl generate``: a randomized sweep of training runs to parquet shards.

Registration only parses arguments; torch and the engine load inside the
handler, so ``udl --version`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` command to the ``udl`` dispatcher."""
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
    p.add_argument("--replicas", type=int, default=4, help="K replicas per run (default 4)")
    p.add_argument("--space", choices=("small", "large"), default="small",
                   help="lever space: 'small' (default; fast, tests and CPU demos) or 'large' (the reference "
                        "atlas and GPU sweeps: widths 16-64, depth 2-4, n_train 256-4,000, 25-100 epochs)")
    p.add_argument("--fix", action="append", default=[], metavar="LEVER=VALUE",
                   help="hold a lever constant (repeatable), e.g. --fix optimizer=adam")
    p.add_argument("--vary", action="append", default=[], metavar="LEVER=V1,V2",
                   help="cycle a lever over values, runs spread evenly (repeatable), e.g. --vary depth=1,4")
    p.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from causal.errors import ConfigError
    from runs_generator.levers import get_space, parse_assignment
    from runs_generator.sweep import SweepConfig, run_sweep

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
    )
    res = run_sweep(cfg)
    print(
        f"udl generate: {res.runs} runs in {res.shards} shard(s) at {res.out}: wrote {res.written_runs} runs "
        f"({res.written_shards} shards), skipped {res.skipped_runs} already done ({res.skipped_shards} shards) "
        f"in {res.wall_time_s:.1f} s"
    )
    return 0
