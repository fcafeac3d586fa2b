"""Host cost of the step-indexed train input, with and without tf.data map fusion.

Builds an experiment's train input (`step_input.StepIndexedInput`) twice in one
process, once with its own options (map fusion on) and once with fusion turned
off, and drains them in turns, `--batches` batches at a time, `--rounds` times:
process CPU time per example (all tf.data threads; what the input takes from
the train step on a small host) and wall time per batch. The same batches come
out of both (checked on the first batch of every turn).

    python -m benchmarks.input --experiment PaliTinySynthetic
"""

import argparse
import time
from typing import Any

import numpy as np
import tensorflow as tf

from benchmarks.timing import progress


def _unfused(ds: tf.data.Dataset) -> tf.data.Dataset:
  options = tf.data.Options()
  options.experimental_optimization.map_fusion = False
  return ds.with_options(options)


def measure(experiment: str, batches: int, rounds: int) -> dict[str, dict[str, float]]:
  """{'fused' | 'unfused': {'cpu_us_per_example', 'wall_ms_per_batch'}} (medians over rounds)."""
  from praxis import pax_fiddle

  from pali_pax.fiddle_configs import registry

  exp = registry.get_experiment(experiment)()
  inp = pax_fiddle.instantiate(exp.datasets()[0])
  datasets = {'fused': inp._dataset(0), 'unfused': _unfused(inp._dataset(0))}  # noqa: SLF001
  if datasets['unfused'].options().experimental_optimization.map_fusion:
    raise RuntimeError('could not turn map fusion off')
  iters = {k: ds.as_numpy_iterator() for k, ds in datasets.items()}
  rows = inp.batch_size
  samples: dict[str, list[tuple[float, float]]] = {k: [] for k in iters}
  for _ in range(2):  # warm-up: autotuning settles
    for it in iters.values():
      next(it)
  for r in range(rounds):
    firsts = {}
    for name, it in iters.items():
      c0, t0 = time.process_time(), time.perf_counter()
      firsts[name] = next(it)
      for _ in range(batches - 1):
        next(it)
      cpu, wall = time.process_time() - c0, time.perf_counter() - t0
      samples[name].append((1e6 * cpu / (batches * rows), 1e3 * wall / batches))
      progress(f'input {name}: round {r + 1}/{rounds} {samples[name][-1][0]:.0f} us cpu/example')
    a, b = firsts.values()
    if not all(np.array_equal(a[k], b[k]) for k in a):
      raise RuntimeError('fused and unfused inputs gave different batches')
  return {
    name: {
      'cpu_us_per_example': float(np.median([c for c, _ in s])),
      'wall_ms_per_batch': float(np.median([w for _, w in s])),
    }
    for name, s in samples.items()
  }


def main(argv: Any = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--experiment', default='PaliTinySynthetic')
  p.add_argument('--batches', type=int, default=20)
  p.add_argument('--rounds', type=int, default=5)
  args = p.parse_args(argv)
  res = measure(args.experiment, args.batches, args.rounds)
  print(f'| {args.experiment} train input | CPU us / example | wall ms / batch |')
  print('|---|---:|---:|')
  for name, r in res.items():
    print(
      f'| map fusion {"on" if name == "fused" else "off"} | '
      f'{r["cpu_us_per_example"]:.0f} | {r["wall_ms_per_batch"]:.1f} |'
    )
  ratio = res['unfused']['cpu_us_per_example'] / res['fused']['cpu_us_per_example']
  print(f'\nCPU per example, off / on: {ratio:.2f}')


if __name__ == '__main__':
  main()
