"""Decoding worker processes that cannot hang their parent, and the memory they may use.

A plain multiprocessing.Pool replaces a worker that dies (killed, or out of memory) and the parent
waits forever for its result. A ProcessPoolExecutor reports the death instead, and that becomes an
`error:` line. Workers die with their parent and keep quiet, so a kill -9 of `prepare` prints no
worker tracebacks (their errors travel back through the futures anyway).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import TypeVar

from frcunet.core.errors import UserError

PR_SET_PDEATHSIG = 1  # linux/prctl.h

Item = TypeVar("Item")
Result = TypeVar("Result")


def _quiet_orphan_proof_worker(parent):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        # The parent died between the fork and the line above: no signal will come, and an orphan would wait
        # for work forever, holding the parent's stdout and stderr open.
        os._exit(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)


def ordered_map(function: Callable[[Item], Result], items: Iterable[Item], workers: int) -> Iterator[Result]:
    """function(item) for each item, in order, over `workers` processes, at most 4 per worker in flight."""
    # fork: the workers need only what is already imported here; a spawned worker would import it all again.
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_orphan_proof_worker,
                               initargs=(os.getpid(),))
    items = iter(items)
    try:
        pending = deque(pool.submit(function, item) for item in islice(items, workers * 4))
        while pending:
            try:
                result = pending.popleft().result()
            except BrokenProcessPool:
                raise UserError("a decoding process died (killed, or out of memory); run again, with fewer "
                                "--workers or a smaller --size if memory is short") from None
            pending.extend(pool.submit(function, item) for item in islice(items, 1))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def workers_that_fit(wanted: int, bytes_per_worker: float, what: str) -> int:
    """The number of workers whose memory fits, at most `wanted`; a UserError if not even one fits."""
    available = available_memory()
    if available is None:
        return wanted
    fitting = int(available // bytes_per_worker)
    if fitting < 1:
        raise UserError(f"{what} needs about {bytes_per_worker / 2**30:.1f} GiB of memory per image but "
                        f"{available / 2**30:.1f} GiB are available; use a smaller --size")
    return min(wanted, fitting)
