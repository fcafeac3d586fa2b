"""XLA CPU's tree-reduction rewrite on and off: the reductions, then whole decode calls.

    python -m benchmarks.reductions [--spec small] [--batches 1,16] [--repeats 5]

`pali_pax.core.xla_cpu.INFERENCE_OPTIONS` compiles inference programs without XLA CPU's
`tree_reduction_rewriter`. This prints, side by side in one process (each case compiled
both ways, timed round-robin, best of --repeats, milliseconds):
  1. single reductions at the model's shapes: softmax over keys, RMSNorm, log-softmax
     over the vocabulary, and a column sum (a bias gradient, which the rewrite helps);
  2. the spec's greedy decode (random weights, `serving.decode_fn.greedy_fn`) at each
     batch size: the one-token call (ViT + encoder + cross K/V + one step) and 16 tokens,
     with the greedy ids of the two variants compared.
The CPU model and the load average are printed with the figures.
"""

import argparse
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from praxis import base_layer

from benchmarks import configs, machine, model_step, timing
from benchmarks.decode import init_params
from pali_pax.core import xla_cpu
from pali_pax.serving import decode_fn

VARIANTS = {'xla default': False, 'pali_pax': True}  # name -> xla_cpu `tuned`


def _best_ms(fns: dict[str, Callable[[], Any]], repeats: int, label: str) -> dict[str, float]:
  """Best wall milliseconds of each fn, timed round-robin (`timing.interleave`)."""
  return {k: t.lo * 1000 for k, t in timing.interleave(fns, repeats, label=label).items()}


def reduction_cases(vocab: int) -> dict[str, tuple[Callable, tuple[int, ...]]]:
  """{name: (fn, input shape)} at the small spec's shapes."""

  def rms(x: jax.Array) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-6)

  return {
    'softmax over keys [16,6,212,212]': (lambda x: jax.nn.softmax(x, -1), (16, 6, 212, 212)),
    'RMSNorm [3392,512]': (rms, (3392, 512)),
    f'log-softmax [1024,{vocab}]': (lambda x: jax.nn.log_softmax(x, -1), (1024, vocab)),
    'column sum [3392,512] (bias grad)': (lambda x: jnp.sum(x, 0), (3392, 512)),
  }


def bench_reductions(vocab: int, repeats: int) -> list[dict[str, Any]]:
  rng = np.random.default_rng(0)
  rows = []
  for name, (fn, shape) in reduction_cases(vocab).items():
    x = jnp.asarray(rng.standard_normal(shape).astype(np.float32))
    fns = {}
    for variant, tuned in VARIANTS.items():
      compiled = xla_cpu.inference_jit(fn, tuned=tuned).lower(x).compile()
      fns[variant] = lambda c=compiled, x=x: c(x)
    rows.append({'case': name, **_best_ms(fns, repeats, f'{name}: ')})
  return rows


def bench_decode(spec_name: str, batches: list[int], repeats: int) -> list[dict[str, Any]]:
  spec = configs.SPECS[spec_name]
  model = base_layer.instantiate(configs.model_config(spec))
  params = init_params(model, jax.tree_util.tree_map(jnp.asarray, model_step.random_batch(spec)))
  rng = np.random.default_rng(0)
  rows = []
  for b in batches:
    image = rng.uniform(-1, 1, (b, spec.image_size, spec.image_size, 3)).astype(np.float32)
    ids = rng.integers(2, 100, (b, spec.input_len)).astype(np.int32)
    args = (params, image, np.ones(b, np.float32), ids)
    for steps in (1, 16):
      fns, outs = {}, {}
      for variant, tuned in VARIANTS.items():
        fn = xla_cpu.inference_jit(decode_fn.greedy_fn(model, steps), tuned=tuned)
        compiled = fn.lower(*args).compile()
        outs[variant] = np.asarray(compiled(*args)[0])
        fns[variant] = lambda c=compiled, a=args: c(*a)
      same = bool(np.array_equal(*outs.values()))
      row = {'case': f'{spec_name} decode, batch {b}, {steps} token(s)', 'same ids': same}
      rows.append({**row, **_best_ms(fns, repeats, f'{row["case"]}: ')})
  return rows


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--spec', default='small', help='benchmarks.configs.SPECS key')
  p.add_argument('--batches', default='1,16', help='decode batch sizes, comma-separated')
  p.add_argument('--repeats', type=int, default=5)
  a = p.parse_args(argv)
  info = machine.describe()
  print(f'CPU: {info["cpu_model"]}; load average at start: {info["load_avg_start"]}', flush=True)
  vocab = configs.SPECS[a.spec].vocab
  rows = bench_reductions(vocab, a.repeats)
  rows += bench_decode(a.spec, [int(b) for b in a.batches.split(',')], a.repeats)
  names = list(VARIANTS)
  print(f'\n| case | {names[0]} ms | {names[1]} ms | speed-up | same ids |\n|---|---|---|---|---|')
  for r in rows:
    ratio = r[names[0]] / r[names[1]]
    print(
      f'| {r["case"]} | {r[names[0]]:.1f} | {r[names[1]]:.1f} | {ratio:.2f}x '
      f'| {r.get("same ids", "")} |'
    )
  print(f'load average at end: {os.getloadavg()}', flush=True)


if __name__ == '__main__':
  main()
