"""The ``udl`` command line: thin commands that parse, call the library, write files.

Each command group lives beside the code it drives and registers itself here:
``udl generate`` in :mod:`runs_generator.cli`; ``udl fit``/``dag`` in
:mod:`causal.cli_fit`; ``udl mediate``/``effects``/``falsify``/``check`` in
:mod:`causal.cli_analysis`; ``udl report`` in :mod:`causal.cli_report`.
Registration modules import nothing heavy (no torch, no DoWhy) so
``udl --version`` answers fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from causal.errors import UdlError

# modules exposing ``register(subparsers)``; each sets ``func`` on its parsers
_COMMAND_MODULES = (
    "runs_generator.cli",
    "causal.cli_fit",
    "causal.cli_analysis",
    "causal.cli_report",
    "causal.findings",
)


def build_parser() -> argparse.ArgumentParser:
    from causal import __version__

    parser = argparse.ArgumentParser(
        prog="udl",
        description="udl-causal: randomized deep-learning training sweeps and the book's causal graph.",
    )
    parser.add_argument("--version", action="version", version=f"udl-causal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UdlError as exc:
        print(f"udl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`udl status DIR | head -1`): stop quietly, as Unix tools do
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's final flush of stdout does not raise again
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
