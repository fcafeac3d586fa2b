"""Host CPU per example of the synthetic train input: today's path against the batched one.

Three step-indexed train inputs (`step_input.StepIndexedInput`) of one experiment's
synthetic mixture, built in one process and drained in turns (round-robin),
`--batches` batches at a time, `--rounds` times:

  before    the generator of `--baseline-rev` (one example per tf.data call,
            TF's Philox stateless ops), loaded from git, streamed through the
            task's seqio preprocessors example by example: the input as it was.
  streamed  today's generator, the same streamed path (`make_batches=False`).
  batched   today's generator a batch per call (`synthetic.batch_fn`), the
            features made in batch ops (`SyntheticSource.features_batch`) and the
            feature converter on the batch (`make_batches=True`, the default).

Reported: process CPU time per example (every tf.data thread: what the input
takes from the train step on a small host), median over rounds (`_round_robin`).
`--split` instead splits the 'before' input's CPU into its stages (generator,
seqio preprocessors, feature converter, mixture plumbing). 'streamed' and 'batched' must give the same batches (checked on the first
batch of every turn); 'before' draws other examples of the same distribution.

    python -m benchmarks.synthetic_input --experiment PaliTinySynthetic [--split]
"""

import argparse
import os
import subprocess
import sys
import time
import types
from typing import Any

import numpy as np

from benchmarks.timing import progress

BASELINE_REV = '8247b8949f740dac0e2ba9f7d416779d34723b46'  # before the batched generator
_LEGACY = 'pali_pax.tasks._legacy_synthetic'


def _git_show(rev: str, module: str) -> str:
  """The source of tasks/<module>.py at git revision `rev`."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run(
    ['git', 'show', f'{rev}:tasks/{module}.py'],
    cwd=root,
    capture_output=True,
    text=True,
    check=True,
  )
  return out.stdout


def legacy_synthetic(rev: str) -> types.ModuleType:
  """tasks/synthetic.py of `rev` with its own synthetic_scene.py, as a module of this process."""
  scene = types.ModuleType(f'{_LEGACY}_scene')
  exec(compile(_git_show(rev, 'synthetic_scene'), scene.__name__, 'exec'), scene.__dict__)
  sys.modules[scene.__name__] = scene
  src = _git_show(rev, 'synthetic').replace(
    'from pali_pax.tasks import synthetic_scene as scene_lib',
    f'import {scene.__name__} as scene_lib',
  )
  mod = types.ModuleType(_LEGACY)
  exec(compile(src, mod.__name__, 'exec'), mod.__dict__)
  sys.modules[mod.__name__] = mod
  return mod


def _register_legacy(mixture: str, legacy: types.ModuleType) -> str:
  """A copy of `mixture` whose sources generate with `legacy` (same preprocessors, rates)."""
  import seqio

  from pali_pax.tasks import step_input, synthetic_tasks

  class LegacySource(synthetic_tasks.SyntheticSource):
    def example_at(self, split: str, index: Any) -> Any:
      args = (self._task, split, self._image_size, self._seed, self._max_objects)
      return legacy.example_fn(*args)(index)

  pairs = []
  for task, rate in step_input.tasks_and_rates(mixture):
    src = task.source
    name = f'{task.name}_before'
    seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
      name,
      source=LegacySource(
        src._task,
        src._image_size,
        {'train': src.num_examples('train')},
        src._seed,
        src._max_objects,
      ),  # fmt: skip
      preprocessors=task.preprocessors,
      output_features=task.output_features,
    )
    pairs.append((name, rate))
  seqio.MixtureRegistry.remove(f'{mixture}_before')
  seqio.MixtureRegistry.add(f'{mixture}_before', pairs)
  return f'{mixture}_before'


def _settle(timeout_s: float = 10.0) -> None:
  """Returns once this process is idle (tf.data buffers full): < 2% of a core for 0.1 s."""
  end = time.perf_counter() + timeout_s
  while time.perf_counter() < end:
    c0 = time.process_time()
    time.sleep(0.1)
    if time.process_time() - c0 < 0.002:
      return


def _round_robin(
  iters: dict[str, Any], batches: int, rounds: int, rows: int, check: tuple[str, str] | None = None
) -> dict[str, float]:
  """{name: host CPU us per example}, median over rounds of draining each iterator in turn.

  A turn runs from an idle process (every input's buffers full) to the process idle
  again after its `batches` batches (its buffers refilled), so the prefetching the
  other inputs do in the background is charged to the input that does it.
  `check`: two names whose first batch of every turn must be equal.
  """
  samples: dict[str, list[float]] = {k: [] for k in iters}
  for _ in range(3):  # warm-up: autotuning settles
    for it in iters.values():
      next(it)
  for r in range(rounds):
    firsts = {}
    for name, it in iters.items():
      _settle()
      c0 = time.process_time()
      firsts[name] = next(it)
      for _ in range(batches - 1):
        next(it)
      _settle()
      samples[name].append(1e6 * (time.process_time() - c0) / (batches * rows))
      progress(f'{name}: round {r + 1}/{rounds} {samples[name][-1]:.0f} us cpu/example')
    if check and not all(
      np.array_equal(firsts[check[0]][k], firsts[check[1]][k]) for k in firsts[check[0]]
    ):
      raise RuntimeError(f'{check[0]} and {check[1]} gave different batches')
  return {name: float(np.median(s)) for name, s in samples.items()}


def _train_config(experiment: str) -> Any:
  from pali_pax.fiddle_configs import registry

  return registry.get_experiment(experiment)().datasets()[0]


def measure(
  experiment: str, batches: int, rounds: int, baseline_rev: str | None
) -> tuple[dict[str, float], int]:
  """({input: CPU us per example}, rows per batch); medians over rounds."""
  from praxis import pax_fiddle

  cfg = _train_config(experiment)
  variants = {'streamed': {'make_batches': False}, 'batched': {'make_batches': True}}
  if baseline_rev:
    before = _register_legacy(cfg.mixture_name, legacy_synthetic(baseline_rev))
    variants = {'before': {'make_batches': False, 'mixture_name': before}, **variants}
  iters = {}
  for name, fields in variants.items():
    c = cfg.clone()
    for k, v in fields.items():
      setattr(c, k, v)
    iters[name] = pax_fiddle.instantiate(c)._dataset(0).as_numpy_iterator()  # noqa: SLF001
  rows = cfg.batch_size
  return _round_robin(iters, batches, rounds, rows, check=('streamed', 'batched')), rows


def split(experiment: str, batches: int, rounds: int, baseline_rev: str) -> dict[str, float]:
  """Where the 'before' input's host CPU per example goes, stage by stage (us).

  Each task alone, cumulatively: its generator ('generate'), then its seqio
  preprocessors and trimming ('preprocess'), then the feature converter ('convert'),
  weighted by the mixing rates; 'mixture' is the whole input minus the last
  (task draws, the per-task streams, choosing and batching: the plumbing).
  """
  import tensorflow as tf
  from praxis import pax_fiddle

  from pali_pax.tasks import step_input

  cfg = _train_config(experiment)
  legacy = legacy_synthetic(baseline_rev)
  before = _register_legacy(cfg.mixture_name, legacy)
  lengths, rows = dict(cfg.task_feature_lengths), cfg.batch_size
  c = cfg.clone()
  c.mixture_name, c.make_batches = before, False
  iters = {'input': pax_fiddle.instantiate(c)._dataset(0).as_numpy_iterator()}  # noqa: SLF001
  weights = {}
  for task, rate in step_input.tasks_and_rates(before):
    src, ids = task.source, tf.data.Dataset.counter(dtype=tf.int64)
    fn = legacy.example_fn(src._task, 'train', src._image_size, src._seed, src._max_objects)
    stream = step_input._task_stream_fn(task, 'train', 0, lengths)  # noqa: SLF001
    stages = {
      'generate': ids.map(fn, num_parallel_calls=2).batch(rows),
      'preprocess': stream(ids).padded_batch(rows),
      'convert': cfg.feature_converter(stream(ids), lengths).batch(rows),
    }
    for stage, ds in stages.items():  # the input's tf.data options (map fusion)
      ds = ds.prefetch(2).with_options(step_input._OPTIONS)  # noqa: SLF001
      iters[f'{task.name} {stage}'] = ds.as_numpy_iterator()
    weights[task.name] = rate
  us = _round_robin(iters, batches, rounds, rows)
  total = sum(weights.values())
  out = {
    stage: sum(w / total * us[f'{t} {stage}'] for t, w in weights.items())
    for stage in ('generate', 'preprocess', 'convert')
  }
  return {**out, 'input': us['input']}


def _machine() -> str:
  model = 'unknown CPU'
  try:
    out = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
    model = next(ln.split(':', 1)[1].strip() for ln in out.splitlines() if 'Model name' in ln)
  except (OSError, subprocess.CalledProcessError, StopIteration):
    pass
  load = ' '.join(f'{x:.2f}' for x in os.getloadavg())
  return f'{model}, {os.cpu_count()} CPUs, load average {load}'


def main(argv: Any = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--experiment', default='PaliTinySynthetic')
  p.add_argument(
    '--batches', type=int, default=128, help='per turn (the batched input makes 32 a call)'
  )
  p.add_argument('--rounds', type=int, default=5)
  p.add_argument(
    '--baseline-rev', default=BASELINE_REV, help="git revision of 'before' ('' to leave it out)"
  )
  p.add_argument('--split', action='store_true', help="where the 'before' input's CPU goes")
  args = p.parse_args(argv)
  start = _machine()
  if args.split:
    res = split(args.experiment, args.batches, args.rounds, args.baseline_rev)
    print(f'\n{start} (start); {_machine()} (end)')
    print(f'| {args.experiment} input before, stage | host CPU us / example | share |')
    print('|---|---:|---:|')
    prev = 0.0
    for stage in ('generate', 'preprocess', 'convert'):
      print(f'| {stage} | {res[stage] - prev:.0f} | {(res[stage] - prev) / res["input"]:.0%} |')
      prev = res[stage]
    plumbing = res['input'] - prev
    print(f'| mixture plumbing | {plumbing:.0f} | {plumbing / res["input"]:.0%} |')
    print(f'| whole input | {res["input"]:.0f} | |')
    return
  res, rows = measure(args.experiment, args.batches, args.rounds, args.baseline_rev or None)
  print(f'\n{start} (start); {_machine()} (end)')
  print(f'| {args.experiment} train input | host CPU us / example | per batch of {rows} |')
  print('|---|---:|---:|')
  for name, us in res.items():
    print(f'| {name} | {us:.0f} | {us * rows / 1e3:.1f} ms |')
  base = res.get('before', res['streamed'])
  print(
    f'\nCPU per example, {"before" if "before" in res else "streamed"} / batched: '
    f'{base / res["batched"]:.1f}x'
  )


if __name__ == '__main__':
  main()
