"""One thread for the many small linear-algebra problems of an analysis."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

__all__ = ["single_threaded"]


@contextmanager
def single_threaded() -> Iterator[None]:
    """Limit BLAS/OpenMP pools to one thread inside the ``with`` block.

    Each regression of an analysis is small (thousands of rows, tens of
    columns): thread pools only add synchronization, and on a busy machine
    OpenMP workers spin-wait. Measured on 2 shared cores: double ML on 4 edges
    took 238 s with default pools and 6 s with one thread; ``falsify`` ran
    4-10x slower with OpenBLAS threads.
    """
    with threadpool_limits(limits=1):
        yield
