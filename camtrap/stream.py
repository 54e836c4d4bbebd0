"""Overlapping stages on one machine: an ordered thread pool, and stages joined by bounded queues.

Threads, not processes: JPEG decoding (PIL, OpenCV, torchvision), resizing and model inference (torch,
onnxruntime) all release the GIL, so threads overlap them without pickling frames between processes, and a
worker pool is started once per run.  Queues are bounded, so memory holds a few batches whatever the length
of the run.  What this module will not do: spread work over machines (that is Ray's job, see the README).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["ordered_map", "staged"]

T = TypeVar("T")
R = TypeVar("R")
_END = object()
_POLL_S = 0.1


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int, lookahead: int) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` threads, results in input order, at most ``lookahead`` items in flight.

    ``workers`` <= 0 runs ``fn`` in the calling thread.
    """
    if workers <= 0:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="hakuna-decode")
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= max(lookahead, workers):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Run:
    """Shared state of one :func:`staged` run: a stop flag and the first error."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def put(self, q: queue.Queue, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def items(self, q: queue.Queue) -> Iterator[Any]:
        while True:
            try:
                item = q.get(timeout=_POLL_S)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is _END:
                return
            yield item

    def pump(self, produce: Iterable[Any], q_out: queue.Queue) -> None:
        try:
            for item in produce:
                if not self.put(q_out, item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            if self.error is None:
                self.error = exc
            self.stop.set()
        finally:
            close = getattr(produce, "close", None)
            if close is not None:  # a generator stopped early: run its cleanup (thread pools) now, in this thread
                close()
            self.put(q_out, _END)


def staged(source: Iterable[Any], stages: list[Callable[[Iterator[Any]], Iterable[Any]]], *,
           maxsize: int = 2) -> Iterator[Any]:
    """Run ``source`` and each stage (an iterator -> iterable function) in its own thread.

    Stage k reads what stage k-1 produced through a queue of at most ``maxsize`` items; the caller iterates
    the last stage's output.  The first exception in any thread stops every stage and is raised here.
    Closing the returned iterator early stops the threads too.
    """
    run = _Run()
    queues = [queue.Queue(maxsize) for _ in range(len(stages) + 1)]
    threads = [threading.Thread(target=run.pump, args=(source, queues[0]), daemon=True, name="hakuna-source")]
    for k, stage in enumerate(stages):
        threads.append(threading.Thread(target=lambda s=stage, k=k: run.pump(s(run.items(queues[k])), queues[k + 1]),
                                        daemon=True, name=f"hakuna-stage{k + 1}"))  # fmt: skip
    for t in threads:
        t.start()
    try:
        yield from run.items(queues[-1])
    finally:
        run.stop.set()
        for t in threads:
            t.join()
    if run.error is not None:
        raise run.error
