"""Compile options of pali_pax's inference programs on XLA CPU.

XLA CPU's `tree_reduction_rewriter` pass turns every reduction over a dimension longer
than 32 into a reduce-window over 32-wide windows plus a second reduce (a two-level sum,
for accuracy). For reductions along the minor dimension, which is all an inference
program has (softmax's max and sum over keys, RMSNorm's mean square over the width,
the log-sum-exp over the vocabulary), the windowed loop is slower than the plain row
reduction: on an idle Intel Xeon (AVX-512, 2 cores), softmax over [16, 6, 212, 212] took
13.5-17 ms with the pass and 4-8 ms without, log-softmax over [1024, 32000] 133-171 ms
against 47-65 ms, and the small spec's 16-token decode at batch 16 ran 1.16-1.18x faster
(`python -m benchmarks.reductions`, docs/benchmarks.md). Reductions over a major axis
(the column sums of bias gradients in a train step) are the opposite, ~17x slower
without the pass, so training programs keep XLA's default and only the inference
programs (the Predictor's, the served decode) are compiled with `INFERENCE_OPTIONS`.

Accuracy: a row reduction of n float32 terms then accumulates in one pass; its error
bound grows from O(log n) to O(n) units of float32 rounding. For the model's rows (n <=
the vocabulary) greedy ids are unchanged and scores move by ~1e-5 (measured on the
`small` spec).

Set `PALI_PAX_XLA_CPU_DEFAULTS=1` to compile inference programs with XLA's defaults
(e.g. to compare).
"""

import os
from collections.abc import Callable
from typing import Any

import jax

INFERENCE_OPTIONS = {'xla_disable_hlo_passes': 'tree_reduction_rewriter'}
DEFAULTS_ENV = 'PALI_PAX_XLA_CPU_DEFAULTS'


def inference_options(tuned: bool = True) -> dict[str, str] | None:
  """`INFERENCE_OPTIONS` on the CPU backend when `tuned` (and not switched off), else None."""
  if not tuned or os.environ.get(DEFAULTS_ENV) == '1' or jax.default_backend() != 'cpu':
    return None
  return dict(INFERENCE_OPTIONS)


def inference_jit(fn: Callable, tuned: bool = True, **jit_kwargs: Any) -> Any:
  """`jax.jit(fn, **jit_kwargs)` compiled with `inference_options(tuned)`."""
  return jax.jit(fn, compiler_options=inference_options(tuned), **jit_kwargs)
