"""Executing tasks: in this process (``scheduler="serial"``), on a local Dask cluster, or at a
Dask scheduler's address; with progress per few images, and clear faults.

A scheduler address is probed before anything is written: nothing listening, something that is
not a Dask scheduler, and a scheduler without workers each fail within the configured timeouts
with one line that names the address, what was found there and how to start a scheduler and
workers. Workers report progress as Dask events, so the bar advances while a batch runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

SERIAL = "serial"
"""``scheduler`` value that runs every task in this process, without Dask."""

DEFAULT_PORT = 8786
START_HINT = "start a scheduler with `dask scheduler` and workers with `dask worker {address}`"


class SchedulerError(ValueError):
    """The Dask scheduler cannot be reached or cannot run tasks."""


# -- progress ------------------------------------------------------------------------------


class Progress:
    """A bar over images that says when the first batch is still compiling kernels."""

    COMPILING = "compiling kernels (numba, once per process; later runs load them from cache)…"

    def __init__(self, total: int, name: str, enabled: bool):
        self.bar = tqdm(total=total, unit="img", desc=name, disable=not enabled or not total,
                        mininterval=0.2, file=sys.stderr)
        self.started = False
        if total:
            self.bar.set_postfix_str(self.COMPILING, refresh=True)

    def advance(self, images: int) -> None:
        if not self.started:
            self.started = True
            self.bar.set_postfix_str("", refresh=False)
        self.bar.update(images)

    def close(self) -> None:
        self.bar.close()


_serial_progress: Callable[[int], None] | None = None


def report_progress(topic: str | None, images: int) -> None:
    """Called by a task after each few images: as a Dask event on a worker, directly in
    serial execution."""
    if topic is not None:
        from distributed import get_worker

        get_worker().log_event(topic, images)
    elif _serial_progress is not None:
        _serial_progress(images)


# -- connecting ----------------------------------------------------------------------------


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a TCP address (``tcp://`` optional), or None for other protocols."""
    protocol, _, rest = address.rpartition("://")
    if protocol not in ("", "tcp"):
        return None
    host, _, port = rest.rpartition(":")
    if not host:
        return rest, DEFAULT_PORT
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise SchedulerError(f"--scheduler {address!r}: the port {port!r} is not a number; "
                             "give an address such as tcp://HOST:8786") from None


def _identity(address: str, timeout: float) -> dict[str, Any]:
    from distributed.core import rpc

    async def ask() -> dict[str, Any]:
        remote = rpc(address, timeout=timeout)
        try:
            return await remote.identity()
        finally:
            await remote.close_rpc()

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(ask(), timeout)

    # a thread of its own: the caller may already run an event loop (a notebook)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, bounded()).result()


def probe(address: str, connect_timeout: float) -> str:
    """The address of a Dask scheduler that answers; :class:`SchedulerError` otherwise."""
    hint = START_HINT.format(address=address)
    target = _host_port(address)
    if target is not None:
        try:
            socket.create_connection(target, timeout=connect_timeout).close()
        except OSError as exc:
            found = ("nothing listens there (connection refused)"
                     if isinstance(exc, ConnectionRefusedError) else
                     f"no answer within {connect_timeout:g} s (execution.connect_timeout_s)"
                     if isinstance(exc, TimeoutError) else f"cannot connect ({exc})")
            raise SchedulerError(f"no Dask scheduler at {address}: {found}; {hint}") from None
    full = address if "://" in address else f"tcp://{address}"
    try:
        kind = _identity(full, connect_timeout).get("type")
    except Exception:
        kind = None
    if kind != "Scheduler":
        found = f"a Dask {kind.lower()}" if isinstance(kind, str) else \
            "something listens there but does not answer as a Dask scheduler"
        raise SchedulerError(f"no Dask scheduler at {address}: {found} "
                             f"(within {connect_timeout:g} s); {hint}")
    return full


def _ignore_interrupts() -> None:
    """Worker processes leave Ctrl-C to the client, which stops them in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _not_the_sync_cancel_race(record: logging.LogRecord) -> bool:
    """False for the one error distributed's ``sync`` logs when Ctrl-C lands before its
    coroutine has made its future: the cancel callback then reads the unset variable and
    raises NameError on the event loop, which tornado prints as a traceback. The interrupt
    itself is already being handled; the traceback would only bury the one-line message."""
    error = record.exc_info[1] if record.exc_info else None
    return not (isinstance(error, NameError) and "sync.<locals>.cancel" in record.getMessage())


@contextmanager
def connect(scheduler: str | None, client: Any = None, *, workers: int = 1,
            connect_timeout: float = 10.0, no_workers_timeout: float = 60.0
            ) -> Iterator[Any]:
    """A Dask client for ``scheduler`` (None: a local cluster of ``workers``; an address; or
    the ready ``client``), or None for serial execution. Faults raise :class:`SchedulerError`
    before anything is submitted."""
    if client is not None:
        yield client
        return
    if scheduler == SERIAL:
        yield None
        return
    tornado_errors = logging.getLogger("tornado.application")
    tornado_errors.addFilter(_not_the_sync_cancel_race)
    try:
        yield from _dask_client(scheduler, workers, connect_timeout, no_workers_timeout)
    finally:
        tornado_errors.removeFilter(_not_the_sync_cancel_race)


def _dask_client(scheduler: str | None, workers: int, connect_timeout: float,
                 no_workers_timeout: float) -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    if scheduler is None:
        # silence_logs: a nanny that waits for a worker to exit logs a warning at close;
        # the run is already complete then, and the warning only confuses the reader.
        # Each worker's numba kernels get their share of the cores, not all of them. The
        # scheduler's HTTP server takes any free port (the default 8787 may be taken).
        # A value set by the user is kept: workers inherit it, and numba refuses a different
        # one once its threads run (it rereads the variable whenever it compiles).
        share = max(1, (os.cpu_count() or 1) // workers)
        env = {} if "NUMBA_NUM_THREADS" in os.environ else {"NUMBA_NUM_THREADS": str(share)}
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=logging.ERROR,
                          env=env) as cluster, \
                Client(cluster) as own:
            own.run(_ignore_interrupts)
            yield own
        return
    address = probe(scheduler, connect_timeout)
    try:
        own = Client(address, timeout=connect_timeout)
    except OSError as exc:
        raise SchedulerError(f"no Dask scheduler at {scheduler}: {exc}; "
                             f"{START_HINT.format(address=scheduler)}") from None
    with own:
        try:
            own.wait_for_workers(1, timeout=no_workers_timeout)
        except (TimeoutError, OSError):
            raise SchedulerError(
                f"the Dask scheduler at {scheduler} has no workers (none joined within "
                f"{no_workers_timeout:g} s, execution.no_workers_timeout_s); start workers with "
                f"`dask worker {scheduler}`") from None
        yield own


# -- executing -----------------------------------------------------------------------------

Task = tuple[Any, ...]


def execute(client: Any, fn: Callable[..., Any], tasks: Sequence[Task],
            finished: Callable[[Task, Any], None], progress: Progress, *,
            no_workers_timeout: float = 60.0, address: str = "the scheduler") -> None:
    """Run ``fn(*task, topic)`` for every task and call ``finished(task, result)`` as each
    returns. ``fn`` reports its progress through :func:`report_progress` with ``topic``."""
    global _serial_progress
    if client is None:
        _serial_progress = progress.advance
        try:
            for task in tasks:
                finished(task, fn(*task, None))
        finally:
            _serial_progress = None
        return
    from dask.distributed import wait

    topic = f"accelsim-progress-{uuid.uuid4().hex[:12]}"
    client.subscribe_topic(topic, lambda event: progress.advance(int(event[1])))
    futures = {client.submit(fn, *task, topic, pure=False,
                             key=f"accelsim-{uuid.uuid4().hex[:16]}"): task for task in tasks}
    remaining = set(futures)
    no_workers_since: float | None = None
    try:
        while remaining:
            try:
                done, remaining = wait(remaining, timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            got = 0
            for fut in done:
                try:  # bounded: a result held by a worker that left cannot be fetched
                    result = fut.result(timeout=no_workers_timeout)
                except TimeoutError:
                    remaining.add(fut)
                    continue
                finished(futures[fut], result)
                got += 1
            if got or client.scheduler_info().get("workers"):
                no_workers_since = None
                continue
            no_workers_since = no_workers_since or time.monotonic()
            if time.monotonic() - no_workers_since > no_workers_timeout:
                raise SchedulerError(
                    f"every worker of the Dask scheduler at {address} has left (none for "
                    f"{no_workers_timeout:g} s, execution.no_workers_timeout_s); finished "
                    f"points are kept; start workers with `dask worker {address}` and re-run")
    finally:
        client.unsubscribe_topic(topic)
        for fut in futures:
            fut.cancel()
