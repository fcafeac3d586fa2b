"""`pali-pax serve` under load: concurrent loopback clients, batched against one at a time.

    python -m benchmarks.serve                     # the 'small' spec (ViT-S/16 224 px, mT5-small)
    python -m benchmarks.serve --spec tiny --requests 32

For each mode, a server subprocess (`pali_pax.serving.server` on a Predictor with random
weights of the spec, deterministic) is started on a free port and warmed:
  one_at_a_time  BATCH_SIZES=(1,): each instance is its own model call
  batched        BATCH_SIZES=--buckets (default 1,4,8: on the 2-core CPU of docs/benchmarks.md
                 a bucket of 16 computes a row slower than one of 8), BATCH_WAIT_MS=--wait_ms
then N clients (`--concurrency`, default 1, 4, 16) send one-instance requests from a
pool of distinct (image, prompt) pairs. Reported per (mode, concurrency): requests/s,
generated tokens/s, p50 / p99 latency, errors, and wrong or missing answers: every
answer is compared with the one-at-a-time, concurrency-1 answer of the same instance
(text exact, score within 1e-3); from the server's metadata, the model calls per bucket,
the model's milliseconds per row of each bucket (the batcher's time in `run_batch` over
the rows it computed, padding included) and the share of the wall time the model was
busy. The machine (CPU model) and its load average are printed.
"""

import argparse
import base64
import concurrent.futures
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import numpy as np
import PIL.Image
import requests

from benchmarks import machine

PROMPTS = ['Generate caption in en:', 'Answer in fr: what colour?', 'Generate caption in de:']


# ---------------------------------------------------------------- the server process
def _serve(args: argparse.Namespace) -> int:
  """Child: a PredictorBackend on the spec's model with random weights, until SIGTERM."""
  import types

  from praxis import base_layer

  from benchmarks import configs
  from benchmarks.decode import init_params
  from pali_pax.core import batch as batch_lib
  from pali_pax.inference import Predictor
  from pali_pax.serving import backends, servable, server
  from pali_pax.tasks import vocab as vocab_lib

  spec = configs.SPECS[args.spec]
  cfg = configs.model_config(spec)
  model = base_layer.instantiate(cfg)
  dummy = batch_lib.make_batch(
    np.ones((1, spec.input_len), np.int32),
    np.ones((1, spec.target_len), np.int32),
    images=np.zeros((1, spec.image_size, spec.image_size, 3), np.float32),
  )
  params = init_params(model, dummy)
  predictor = Predictor(cfg, params, vocab_lib.get_vocabulary(vocab_lib.DEFAULT_VOCAB_PATH))
  experiment = types.SimpleNamespace(
    EVAL_BATCH_SIZE=16,
    INPUT_LEN=max(spec.input_len, 16),  # the prompts above fit
    MAX_DECODE_LEN=args.max_decode_steps,
    IMAGE_SIZE=spec.image_size,
    VOCAB_PATH=None,
  )
  sizes = tuple(int(b) for b in args.batch_sizes.split(','))
  cls = type(
    f'Bench{args.spec.title()}',
    (servable.PaliServable,),
    {'EXPERIMENT': args.spec, 'BATCH_SIZES': sizes, 'BATCH_WAIT_MS': args.wait_ms},
  )
  backend = backends.PredictorBackend(predictor, cls(experiment))
  return server.serve(backend, args.serve_port)


# ---------------------------------------------------------------- the client side
def _png_b64(seed: int, size: int) -> str:
  pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)
  buf = io.BytesIO()
  PIL.Image.fromarray(pixels).save(buf, 'PNG')
  return base64.b64encode(buf.getvalue()).decode()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


class _Server:
  def __init__(self, args: argparse.Namespace, batch_sizes: str) -> None:
    self.port = _free_port()
    cmd = [sys.executable, '-m', 'benchmarks.serve', '--spec', args.spec]
    cmd += ['--serve_port', str(self.port), '--batch_sizes', batch_sizes]
    cmd += ['--wait_ms', str(args.wait_ms), '--max_decode_steps', str(args.max_decode_steps)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    self.log = open(os.path.join(args.log_dir, f'serve_{batch_sizes}.log'), 'w')  # noqa: SIM115
    start = time.monotonic()
    self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log)
    self.url = f'http://127.0.0.1:{self.port}/v1/models/pali'
    while True:
      if self.proc.poll() is not None:
        raise RuntimeError(f'server exited {self.proc.returncode}; see {self.log.name}')
      try:
        if requests.get(self.url, timeout=5).status_code == 200:
          break
      except requests.ConnectionError:
        pass
      time.sleep(0.5)
    self.start_s = time.monotonic() - start

  def stop(self) -> int:
    self.proc.send_signal(signal.SIGTERM)
    code = self.proc.wait(120)
    self.log.close()
    return code


def _one(url: str, row: dict) -> tuple[float, int, dict | None]:
  start = time.monotonic()
  try:
    r = requests.post(f'{url}:predict', json={'instances': [row]}, timeout=600)
    answer = r.json()['predictions'][0] if r.status_code == 200 else None
    return time.monotonic() - start, r.status_code, answer
  except (requests.RequestException, ValueError, KeyError):
    return time.monotonic() - start, 0, None


def _level(url: str, pool: list[dict], n: int, concurrency: int) -> dict[str, Any]:
  """n requests (instance i % len(pool)) from `concurrency` clients; raw answers kept."""
  start = time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(concurrency) as ex:
    results = list(ex.map(lambda i: _one(url, pool[i % len(pool)]), range(n)))
  wall = time.monotonic() - start
  lat = np.array([r[0] for r in results])
  answers = [r[2] for r in results]
  tokens = sum(a.get('tokens', 0) for a in answers if a)
  return dict(
    concurrency=concurrency,
    requests=n,
    wall_s=wall,
    requests_per_s=n / wall,
    tokens_per_s=tokens / wall,
    p50_ms=float(np.percentile(lat, 50) * 1000),
    p99_ms=float(np.percentile(lat, 99) * 1000),
    errors=sum(r[1] != 200 for r in results),
    answers=answers,
  )


def _batches_run(url: str) -> tuple[dict[str, int], dict[str, float]]:
  """(model calls, seconds in them) per bucket so far (the server's metadata)."""
  meta = requests.get(f'{url}/metadata', timeout=30).json()['metadata']
  return meta['batches_run'], meta['batch_seconds']


def _model_use(before: tuple, after: tuple, wall: float) -> dict[str, Any]:
  """Calls per bucket, model ms per row of each bucket, and the model-busy share of `wall`."""
  (calls0, secs0), (calls1, secs1) = before, after
  used = [b for b in calls1 if calls1[b] > calls0[b]]
  per_row = {
    b: round(1000 * (secs1[b] - secs0[b]) / (calls1[b] - calls0[b]) / int(b), 1) for b in used
  }
  busy = sum(secs1[b] - secs0[b] for b in used) / wall
  return {
    'model_calls': {b: calls1[b] - calls0[b] for b in used},
    'model_ms_per_row': per_row,
    'model_busy': round(busy, 3),
  }


def _wrong(answers: list[dict | None], pool_size: int, reference: dict[int, dict]) -> int:
  wrong = 0
  for i, a in enumerate(answers):
    want = reference.get(i % pool_size)
    ok = a is not None and want is not None and a['text'] == want['text']
    wrong += not (ok and abs(a['score'] - want['score']) <= 1e-3)
  return wrong


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Measures every mode and concurrency; returns the rows (and prints the table)."""
  from benchmarks import configs

  info = machine.describe()
  print(f'CPU: {info["cpu_model"]} ({info["cpus_usable"]} usable cores); '
        f'load average at start: {info["load_avg_start"]}', flush=True)  # fmt: skip
  image_size = configs.SPECS[args.spec].image_size
  pool = [
    {'image_b64': _png_b64(s, image_size), 'prompt': PROMPTS[s % len(PROMPTS)]}
    for s in range(args.pool)
  ]
  levels = [int(c) for c in args.concurrency.split(',')]
  rows, reference = [], {}
  for mode, sizes in {'one_at_a_time': '1', 'batched': args.buckets}.items():
    server = _Server(args, sizes)
    print(f'{mode}: server up (load + warm-up {server.start_s:.0f} s)', flush=True)
    _one(server.url, pool[0])  # the clients' own first-call costs, outside the measurement
    for c in levels:
      n = max(args.requests, args.pool if not reference else 0, 3 * c)
      before = _batches_run(server.url)
      row = _level(server.url, pool, n, c)
      after = _batches_run(server.url)
      row.update(_model_use(before, after, row['wall_s']))
      if not reference:  # the first level of the first mode: one at a time, alone
        reference = {i: a for i, a in enumerate(row['answers'][: args.pool]) if a}
      row['wrong_or_missing'] = _wrong(row.pop('answers'), args.pool, reference)
      row['mode'] = mode
      rows.append(row)
      print(
        json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}),
        flush=True,
      )
    row_exit = server.stop()
    print(f'{mode}: server exit code after SIGTERM: {row_exit}', flush=True)
  base = next(r for r in rows if r['mode'] == 'batched' and r['concurrency'] == levels[0])
  head = '| mode | clients | requests/s | tokens/s | p50 ms | p99 ms | errors | wrong/missing |'
  print(f'\n{head} calls per bucket | model ms per row | model busy |\n' + '|---' * 11 + '|')
  for r in rows:
    print(
      f'| {r["mode"]} | {r["concurrency"]} | {r["requests_per_s"]:.2f} | {r["tokens_per_s"]:.1f} '
      f'| {r["p50_ms"]:.0f} | {r["p99_ms"]:.0f} | {r["errors"]} | {r["wrong_or_missing"]} '
      f'| {r["model_calls"]} | {r["model_ms_per_row"]} | {r["model_busy"]:.0%} |'
    )
  for r in rows:
    if r['mode'] == 'batched' and r['concurrency'] != levels[0]:
      ratio = r['requests_per_s'] / base['requests_per_s']
      print(f'batched, {r["concurrency"]} clients: {ratio:.2f}x the throughput of 1 client')
  for r in rows:
    alone = [
      a for a in rows if a['mode'] == 'one_at_a_time' and a['concurrency'] == r['concurrency']
    ]
    if r['mode'] == 'batched' and alone:
      ratio = r['requests_per_s'] / alone[0]['requests_per_s']
      print(f'{r["concurrency"]} clients: batched {ratio:.2f}x the throughput of one at a time')
  print(f'load average at end: {os.getloadavg()}', flush=True)
  return {'machine': info, 'rows': rows, 'load_avg_end': os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--spec', default='small', help="benchmarks.configs.SPECS key ('small', 'tiny')")
  p.add_argument('--concurrency', default='1,4,16', help='client counts, comma-separated')
  p.add_argument(
    '--requests', type=int, default=32, help='requests per level (at least 3x clients)'
  )
  p.add_argument('--pool', type=int, default=16, help='distinct (image, prompt) instances')
  p.add_argument('--buckets', default='1,4,8', help='BATCH_SIZES of the batched mode')
  p.add_argument('--wait_ms', type=float, default=50.0, help='BATCH_WAIT_MS of the batched mode')
  p.add_argument('--max_decode_steps', type=int, default=16)
  p.add_argument('--log_dir', default='/tmp', help='server logs')
  p.add_argument('--out', default=None, help='write the rows as JSON')
  p.add_argument('--serve_port', type=int, default=None, help=argparse.SUPPRESS)  # the child
  p.add_argument('--batch_sizes', default='1', help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.serve_port is not None:
    return _serve(args)
  result = run(args)
  if args.out:
    with open(args.out, 'w') as f:
      json.dump(result, f, indent=1)
  bad = sum(r['errors'] + r['wrong_or_missing'] for r in result['rows'])
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
