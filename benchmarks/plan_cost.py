"""The arithmetic of a sweep plan under the engine's grouping: training FLOPs and chunk-steps.

Usage::

    python benchmarks/plan_cost.py --space large --runs 1024 --seed 1 --shard-size 32

For each grouping (``--pad-widths off`` and ``on``: :func:`runs_generator.engine.group_key` with
``pad``) it replays the engine's chunking without training (groups per shard, then
:func:`runs_generator.engine.cut_chunks` with chunks of up to ``CUDA_MAX_CHUNK`` models; the activation
budget, which needs the data's shapes, is not applied), and counts

* training TFLOP: 6 x multiply-adds x (padded batch) x (padded width) x the chunk's longest budget, summed
  over every model of every chunk (a padded or finished model still computes until its chunk ends);
* the useful TFLOP: the same with each run's own width, batch and budget;
* chunk-steps: the sum over chunks of their longest budget (training steps executed; on a GPU each is a
  fixed cost of kernel launches, or one graph replay, whatever the chunk's size).

No timing: it says how much arithmetic and how many steps a grouping asks of a device.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from _plan import add_plan_arguments, draw_plan  # benchmarks/_plan.py (benchmarks run as scripts)
from runs_generator import engine
from runs_generator.registry import arch_entry


def macs(c, width: int, batch: int) -> int:
    """Multiply-adds per model and step of a supervised MLP / CNN run (other archs: the MLP formula)."""
    pos = arch_entry(c.arch).positions
    if c.arch == "cnn":
        return batch * pos * (5 * width + (c.depth - 1) * 3 * width * width + width * 10)
    inp = 40 if c.task == "mnist1d" else 20
    return batch * (inp * width + (c.depth - 1) * width * width + width * 10)


def cost(configs, plan, pad: bool) -> tuple[float, float, int, int]:
    total = useful = 0.0
    chunk_steps = chunks = 0
    for shard in plan:
        groups = defaultdict(list)
        for i in shard:
            groups[engine.group_key(configs[i], pad=pad)].append(i)
        for members in groups.values():
            for cut in engine.cut_chunks(members, configs, engine.CUDA_MAX_CHUNK, pad):
                ch = [configs[i] for i in cut]
                w = max(c.width for c in ch)
                b = max(c.effective_batch for c in ch)
                s = max(c.steps for c in ch)
                total += sum(6 * macs(c, w, b) * s * c.replicas for c in ch)
                useful += sum(6 * macs(c, c.width, c.effective_batch) * c.steps * c.replicas for c in ch)
                chunk_steps += s
                chunks += 1
    return total / 1e12, useful / 1e12, chunk_steps, chunks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_plan_arguments(p)
    args = p.parse_args(argv)
    configs, plan = draw_plan(args)
    print(f"plan: --space {args.space} --runs {args.runs} --seed {args.seed} --shard-size {args.shard_size} "
          f"({len(plan)} shards)")
    print("| grouping | chunks | chunk-steps | training TFLOP | useful TFLOP | ratio |")
    print("|---|---|---|---|---|---|")
    for pad in (False, True):
        total, useful, steps, chunks = cost(configs, plan, pad)
        print(f"| pad-widths {'on' if pad else 'off'} | {chunks} | {steps:,} | {total:,.0f} | {useful:,.0f} | "
              f"{total / useful:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
