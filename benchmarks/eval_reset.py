"""How long paxml's reset of a decode input takes, with and without tf.data autotuning.

Builds an experiment's decode inputs twice in one process, as paxml's
`SeqIOInput` (autotuned) and as ours (`eval_input.SeqIOEvalInput`), with the
train input running as in a training job. Each round reads train batches for
`--gap` seconds (the training between two decode rounds: the autotuner's sleep
grows with the iterators' age), then, input by input and variant by variant in turns, does what
a paxml decode round does: `reset()` (drop the previous round's iterators, make
new ones), read the split and the targets. Prints the reset times (seconds) per
variant: median and maximum over rounds x inputs.

    python -m benchmarks.eval_reset --experiment PaliTinySynthetic --rounds 6 --gap 20
"""

import argparse
import time
from typing import Any

import numpy as np
import tensorflow as tf

from benchmarks.timing import progress


def _read_round(inp: Any) -> None:
  while True:
    try:
      inp.get_next()
    except (StopIteration, tf.errors.OutOfRangeError):
      break
  if not inp.is_targets_init:
    inp._gen_targets_artifacts()  # noqa: SLF001 (what paxml's decode program calls)
  inp._get_targets()  # noqa: SLF001


def measure(experiment: str, rounds: int, gap: float) -> dict[str, list[float]]:
  """{'paxml SeqIOInput' | 'SeqIOEvalInput': [reset seconds, ...]}."""
  from paxml import seqio_input
  from praxis import base_hyperparams

  from pali_pax.fiddle_configs import registry

  exp = registry.get_experiment(experiment)()
  train = base_hyperparams.instantiate(exp.datasets()[0])
  variants: dict[str, list[Any]] = {'paxml SeqIOInput': [], 'SeqIOEvalInput': []}
  for p in exp.decoder_datasets():
    variants['SeqIOEvalInput'].append(base_hyperparams.instantiate(p))
    paxml_p = p.clone()
    paxml_p.cls = seqio_input.SeqIOInput
    variants['paxml SeqIOInput'].append(base_hyperparams.instantiate(paxml_p))
  times: dict[str, list[float]] = {k: [] for k in variants}
  for inputs in variants.values():  # the first round builds the targets
    for inp in inputs:
      _read_round(inp)
  for r in range(rounds):
    t_end = time.perf_counter() + gap
    while time.perf_counter() < t_end:
      train.get_next()
    for k in range(len(variants['SeqIOEvalInput'])):
      for name, inputs in variants.items():
        t0 = time.perf_counter()
        inputs[k].reset()
        times[name].append(time.perf_counter() - t0)
        _read_round(inputs[k])
    worst = {name: max(t) for name, t in times.items()}
    progress(f'eval reset round {r + 1}/{rounds}: worst so far (s) {worst}')
  return times


def main(argv: Any = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--experiment', default='PaliTinySynthetic')
  p.add_argument('--rounds', type=int, default=6)
  p.add_argument('--gap', type=float, default=20.0, help='seconds of train input per round')
  args = p.parse_args(argv)
  times = measure(args.experiment, args.rounds, args.gap)
  n = len(next(iter(times.values())))
  print(f'| {args.experiment} decode input reset ({n} resets) | median s | max s |')
  print('|---|---:|---:|')
  for name, t in times.items():
    print(f'| {name} | {np.median(t):.2f} | {max(t):.2f} |')


if __name__ == '__main__':
  main()
