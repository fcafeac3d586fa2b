"""The dynamic batcher on its own: buckets, padding, row order, cancelled rows, failures."""

import concurrent.futures
import threading

import pytest

from pali_pax.serving.batcher import Batcher


class Recorder:
  """run_batch that answers each row with (row, batch size) and records the batch sizes."""

  def __init__(self) -> None:
    self.sizes: list[int] = []
    self.busy = threading.Event()  # set while a batch waits for `gate`
    self.gate = threading.Event()

  def __call__(self, rows: list) -> list:
    self.sizes.append(len(rows))
    self.busy.set()
    assert self.gate.wait(30)
    return [(row, len(rows)) for row in rows]

  def occupy(self, b: Batcher) -> concurrent.futures.Future:
    """Submits one row and returns once the worker is running it (until `gate` opens)."""
    future = b.submit(['first'])[0]
    assert self.busy.wait(10)
    return future


def test_gathered_rows_are_padded_to_a_bucket_and_answered_in_order():
  run = Recorder()
  warmed = []
  b = Batcher(run, batch_sizes=(1, 4, 8), wait_ms=0)
  b.start(warm_up=warmed.append)
  assert b.ready.wait(10) and warmed == [1, 4, 8]
  blocker = run.occupy(b)
  queued = b.submit([f'r{i}' for i in range(6)])  # gathered while the worker is busy
  run.gate.set()
  assert blocker.result(10) == ('first', 1)
  assert [f.result(10) for f in queued] == [(f'r{i}', 8) for i in range(6)]  # 6 -> bucket 8
  assert run.sizes == [1, 8] and b.batches_run == {1: 1, 4: 0, 8: 1}
  b.close(10)


def test_rows_of_a_vanished_client_are_dropped_before_their_batch():
  run = Recorder()
  b = Batcher(run, batch_sizes=(1, 4), wait_ms=0)
  b.start()
  run.occupy(b)
  gone = b.submit(['x', 'y'])
  kept = b.submit(['z'])
  for f in gone:
    assert f.cancel()
  run.gate.set()
  assert kept[0].result(10) == ('z', 1)
  assert run.sizes == [1, 1]
  b.close(10)


def test_a_failing_batch_fails_its_requests_and_the_next_batch_runs():
  calls = []

  def run(rows: list) -> list:
    calls.append(rows)
    if 'boom' in rows:
      raise RuntimeError('model failed')
    return rows

  b = Batcher(run, batch_sizes=(1,), wait_ms=0)
  b.start()
  with pytest.raises(RuntimeError, match='model failed'):
    b.submit(['boom'])[0].result(10)
  assert b.submit(['ok'])[0].result(10) == 'ok'
  b.close(10)


def test_a_failed_warm_up_is_reported_to_each_request():
  def warm_up(n: int) -> None:
    raise ValueError('no such program')

  b = Batcher(lambda rows: rows, batch_sizes=(1,), wait_ms=0)
  b.start(warm_up=warm_up)
  future = b.submit(['a'])[0]
  with pytest.raises(RuntimeError, match='failed to warm up'):
    future.result(10)
  assert not b.ready.is_set() and isinstance(b.warm_up_error, ValueError)
  assert isinstance(future, concurrent.futures.Future)
  b.close(10)
