"""The machine's limit: measured jnp matmul rate on large square matrices."""

from typing import Any

import jax
import jax.numpy as jnp

from benchmarks.timing import progress, time_calls


def matmul_rate(n: int, dtype: str, repeats: int) -> dict[str, Any]:
  """FLOP/s of a jitted [n, n] @ [n, n] in `dtype` ('float32' / 'bfloat16').

  2 n^3 FLOPs per call; the rate uses the median and the best repeat.
  """
  dt = getattr(jnp, dtype)
  ka, kb = jax.random.split(jax.random.PRNGKey(0))
  a = jax.random.normal(ka, (n, n), dt)
  b = jax.random.normal(kb, (n, n), dt)
  f = jax.jit(jnp.matmul)
  timing = time_calls(lambda: f(a, b), repeats, 1)
  flop = 2.0 * n**3
  progress(f'matmul {dtype} {n}: {flop / timing.median / 1e9:.1f} GFLOP/s')
  return dict(
    n=n,
    dtype=dtype,
    timing=timing.to_json(),
    flops_per_s=flop / timing.median,
    flops_per_s_best=flop / timing.lo,
  )


def bench_matmul(sizes: tuple[int, ...], repeats: int) -> list[dict[str, Any]]:
  """matmul_rate for every size in float32 and bfloat16."""
  return [matmul_rate(n, dt, repeats) for dt in ('float32', 'bfloat16') for n in sizes]


def peak(records: list[dict[str, Any]], dtype: str = 'float32') -> float:
  """The highest median rate measured for `dtype` (the MFU denominator)."""
  rates = [r['flops_per_s'] for r in records if r['dtype'] == dtype]
  return max(rates) if rates else float('nan')
