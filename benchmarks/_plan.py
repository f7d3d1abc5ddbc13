"""The sweep plan a benchmark studies: the runs and shards ``udl generate`` would make."""

from __future__ import annotations

import argparse

from runs_generator.levers import get_space
from runs_generator.spec import RunConfig
from runs_generator.sweep import sweep_plan


def add_plan_arguments(p: argparse.ArgumentParser, runs: int = 1024, shard_size: int = 32) -> None:
    """``--space``, ``--runs``, ``--seed`` and ``--shard-size``, as ``udl generate`` takes them."""
    p.add_argument("--space", default="large")
    p.add_argument("--runs", type=int, default=runs)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shard-size", type=int, default=shard_size)


def draw_plan(args: argparse.Namespace) -> tuple[list[RunConfig], list[tuple[int, ...]]]:
    """The plan's configurations (4 replicas) and its shards (run indices), as ``udl generate`` cuts them."""
    space = get_space(args.space)
    configs = [space.draw(args.seed, i, replicas=4) for i in range(args.runs)]
    return configs, sweep_plan(configs, args.shard_size)
