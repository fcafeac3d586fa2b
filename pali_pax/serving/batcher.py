"""Dynamic batching: one worker thread gathers concurrent requests' instances into buckets.

    batcher = Batcher(run_batch, batch_sizes=(1, 4, 16), wait_ms=5.0)
    batcher.start(warm_up=lambda: ...)            # warms every bucket, then serves
    futures = batcher.submit(instances)             # concurrent.futures.Future per instance
    results = await asyncio.gather(*map(asyncio.wrap_future, futures))

The worker takes the first waiting instance, then gathers more for up to `wait_ms`
(or until the largest bucket is full), pads the batch to the smallest bucket that
holds it by repeating its last instance, calls `run_batch` once and hands each
instance its own row. Padding to buckets means a program is compiled per bucket and
never per request count; the model's rows are independent, so a row's answer does
not depend on what it was batched with (tested against one-at-a-time serving).

Inference runs only in the worker thread: the server's event loop awaits futures.
An instance whose future was cancelled (its client went away) before its batch
started is dropped from the batch.
"""

import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

_STOP = object()


class Batcher:
  """Gathers instances submitted from any thread into padded bucket batches."""

  def __init__(
    self,
    run_batch: Callable[[list[Any]], Sequence[Any]],
    batch_sizes: Sequence[int],
    wait_ms: float,
  ) -> None:
    """`run_batch(instances)` gets exactly a bucket's count and returns one result each."""
    self._run_batch = run_batch
    self.batch_sizes = tuple(sorted(batch_sizes))
    self._wait_s = max(0.0, wait_ms) / 1000.0
    self._queue: queue.Queue = queue.Queue()
    self._thread: threading.Thread | None = None
    self.ready = threading.Event()  # set once every bucket is warm
    self.batches_run: dict[int, int] = {b: 0 for b in self.batch_sizes}  # bucket -> calls
    # bucket -> wall seconds inside run_batch (model call + pre/post-processing)
    self.batch_seconds: dict[int, float] = {b: 0.0 for b in self.batch_sizes}
    self.warm_up_error: BaseException | None = None

  @property
  def max_batch(self) -> int:
    return self.batch_sizes[-1]

  def bucket(self, n: int) -> int:
    """The smallest bucket holding `n` instances (n <= the largest bucket)."""
    return next(b for b in self.batch_sizes if b >= n)

  def start(self, warm_up: Callable[[int], None] | None = None) -> None:
    """Starts the worker; it first calls `warm_up(bucket)` for every bucket."""
    self._thread = threading.Thread(target=self._work, args=(warm_up,), name='pali-batcher')
    self._thread.daemon = True
    self._thread.start()

  def submit(self, instances: Sequence[Any]) -> list[concurrent.futures.Future]:
    """Queues `instances`; one future each, resolved with its result (or exception)."""
    futures = []
    for instance in instances:
      future: concurrent.futures.Future = concurrent.futures.Future()
      self._queue.put((instance, future))
      futures.append(future)
    return futures

  def close(self, timeout: float | None = None) -> None:
    """Serves what is queued, then stops the worker."""
    self._queue.put(_STOP)
    if self._thread is not None:
      self._thread.join(timeout)

  # ------------------------------------------------------------ the worker
  def _work(self, warm_up: Callable[[int], None] | None) -> None:
    try:
      for b in self.batch_sizes:
        if warm_up is not None:
          warm_up(b)
    except BaseException as e:  # noqa: BLE001  reported by the status endpoint and each request
      self.warm_up_error = e
    else:
      self.ready.set()
    stopping = False
    while not stopping:
      first = self._queue.get()
      if first is _STOP:
        return
      batch = [first]
      deadline = time.monotonic() + self._wait_s
      while len(batch) < self.max_batch:
        try:
          item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
          break
        if item is _STOP:
          stopping = True  # serve this batch (and nothing queued after the stop)
          break
        batch.append(item)
      self._run(batch)

  def _run(self, batch: list[tuple[Any, concurrent.futures.Future]]) -> None:
    live = [(inst, fut) for inst, fut in batch if fut.set_running_or_notify_cancel()]
    if not live:
      return
    instances = [inst for inst, _ in live]
    bucket = self.bucket(len(instances))
    padded = instances + [instances[-1]] * (bucket - len(instances))
    start = time.monotonic()
    try:
      if self.warm_up_error is not None:  # no program to run: each request learns why
        raise RuntimeError(f'the model failed to warm up: {self.warm_up_error!r}')
      results = self._run_batch(padded)
    except BaseException as e:  # noqa: BLE001  each waiting request gets the error
      for _, fut in live:
        fut.set_exception(e)
      return
    self.batches_run[bucket] += 1
    self.batch_seconds[bucket] += time.monotonic() - start
    for (_, fut), result in zip(live, results, strict=False):
      fut.set_result(result)
