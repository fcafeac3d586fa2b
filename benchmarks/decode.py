"""Greedy decoding: ours with the KV cache, ours recomputing, and the timings.

* cached: `PaliModel.decode_with_params` with praxis greedy hparams (praxis
  `sample_decode` driving our `extend_step`), jitted whole: one ViT + encoder
  pass, then one cached decoder step per token.
* recompute (no cache): ViT + encoder once, then for every new token the
  teacher-forced decoder (`Mt5EncoderDecoder.decode`) re-runs over the whole
  [B, n] output buffer (causal, so positions not yet written do not matter)
  and the argmax at the current position is appended; a `fori_loop`, so one
  compiled program per length. Each step costs O(n) decoder work.

The end-of-sequence id is set to -1 (never produced), so every row decodes
exactly n tokens whatever the random weights predict; the peer forces the same
with `min_new_tokens`.
"""

from typing import Any

import jax
import jax.numpy as jnp
from praxis import base_layer, decoder_hparams, py_utils

from benchmarks import configs, model_step
from benchmarks.timing import progress
from pali_pax.core import xla_cpu
from pali_pax.serving import decode_fn

NestedMap = py_utils.NestedMap
NEVER_EOS = -1


def init_params(model: Any, batch: NestedMap) -> dict:
  """Random `params` of a PaliModel for `batch`'s shapes (jitted init)."""

  @jax.jit
  def init(key: jax.Array) -> dict:
    return model.init({'params': key}, batch, method=model.compute_predictions)

  return init(jax.random.PRNGKey(0))['params']


def eval_ctx() -> Any:
  """praxis eval context (no dropout) for applying the model outside paxml."""
  return base_layer.JaxContext.new_context(hparams=base_layer.JaxContext.HParams(do_eval=True))


def cached_fn(model: Any, steps: int) -> Any:
  """jit(params, batch) -> ids [B, steps]: the Predictor's decode call, never stopping at eos."""
  hp = decoder_hparams.GreedyDecoderHParams(seqlen=steps + 1, eos_id=NEVER_EOS)

  def run(params: dict, batch: NestedMap) -> jax.Array:
    return decode_fn.run_decode(model, params, batch, hp).output_ids[:, 0, 1:]

  return xla_cpu.inference_jit(run)  # compiled as the Predictor compiles it


def recompute_fn(model: Any, steps: int) -> Any:
  """jit(params, batch) -> ids [B, steps], re-running the decoder per token."""

  def body(mdl: Any, batch: NestedMap) -> jax.Array:
    enc, enc_paddings = mdl.encode(batch)
    b = enc.shape[0]
    buf = jnp.zeros((b, steps + 1), jnp.int32)  # start id 0 at position 0
    paddings = jnp.zeros((b, steps + 1), jnp.float32)

    def step(t: jax.Array, buf: jax.Array) -> jax.Array:
      logits = mdl.mt5.decode(enc, enc_paddings, buf, paddings)  # [B, n+1, V]
      nxt = jnp.argmax(jax.lax.dynamic_index_in_dim(logits, t, 1, False), axis=-1)
      return jax.lax.dynamic_update_index_in_dim(buf, nxt.astype(jnp.int32), t + 1, 1)

    return jax.lax.fori_loop(0, steps, step, buf)[:, 1:]

  def run(params: dict, batch: NestedMap) -> jax.Array:
    with eval_ctx():
      return model.apply({'params': params}, batch, method=body)

  return xla_cpu.inference_jit(run)


def ours_fns(
  spec: configs.BenchSpec,
  lengths: tuple[int, ...],
  opts: configs.ModelOptions = configs.LIBRARY_DEFAULT,
  methods: tuple[str, ...] = ('cached', 'recompute'),
  prefix: str = 'ours_',
) -> dict[tuple[str, int], Any]:
  """{(prefix + 'cached' | 'recompute', n): fn} for every n in `lengths`.

  fn() decodes n tokens for the spec's random batch (ViT + encoder + n steps)
  with random weights; each (method, n) is its own compiled program.
  """
  model = base_layer.instantiate(configs.model_config(spec, opts))  # = ours.task_config's model
  batch = jax.tree_util.tree_map(jnp.asarray, model_step.random_batch(spec))
  params = init_params(model, batch)
  out = {}
  for method in methods:
    for n in lengths:
      fn = (cached_fn if method == 'cached' else recompute_fn)(model, n)
      progress(f'ours decode {spec.name} {method} n={n}: compiling')
      fn = fn.lower(params, batch).compile()
      out[(f'{prefix}{method}', n)] = lambda fn=fn: fn(params, batch)
  return out


def per_token(records: list[dict[str, Any]], method: str, n: int) -> float | None:
  """Seconds per generated token at length n: (T(n) - T(1)) / (n - 1).

  T(n) is the median time of a whole call producing n tokens; subtracting
  T(1) removes the prefill (ViT, encoder, cross-attention K/V), so this is the
  marginal cost of one more decoder step. Records: {method, steps, timing}.
  """
  t = {r['steps']: r['timing']['median'] for r in records if r['method'] == method}
  if n not in t or 1 not in t or n <= 1:
    return None
  return (t[n] - t[1]) / (n - 1)
