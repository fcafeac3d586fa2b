"""The model-only train step: PaliModel, its loss and praxis' Adam, without paxml or TensorFlow.

`benchmarks.ours` runs the step the way paxml runs it (`tasks_lib.SingleTask`,
`trainer_lib.train_step_single_learner`). That needs TensorFlow at run time: SingleTask
builds its learners through lingvo's `NestedMap.FromNestedDict`, whose leaf check reads
`tensorflow.python.trackable.data_structures` (a lazy import in
lingvo/core/nested_map.py). A GPU image without TensorFlow, or with a jax newer than
paxml 1.4 supports (0.9 removed `pjit.AUTO`), cannot run it. This module is the same
math without paxml: `PaliModel.compute_predictions` + `compute_loss` ('total_loss'),
`jax.value_and_grad`, praxis' `optimizers.Adam` gradient transformation, and the
update as paxml's `Learner.apply_gradient` adds it (`var + transformed_grad`).
Decoding (`benchmarks.decode.cached_fn`) needs neither paxml nor TensorFlow either.
"""

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from praxis import base_layer, optimizers, pax_fiddle, py_utils, schedules

from benchmarks import configs
from pali_pax.core import batch as batch_lib

NestedMap = py_utils.NestedMap


def random_batch(spec: configs.BenchSpec, seed: int = 0) -> NestedMap:
  """A batch in the model's format (`pali_pax.core.batch`) with random ids/pixels.

  Random rather than constant inputs so no data-dependent shortcut can make a
  step cheaper than a real one.
  """
  rng = np.random.default_rng(seed)
  b, ti, to = spec.batch, spec.input_len, spec.target_len
  # Ids from 2 (past pad and eos): every position is a real token.
  tgt = rng.integers(2, spec.vocab, size=(b, to)).astype(np.int32)
  image = rng.uniform(-1, 1, size=(b, spec.image_size, spec.image_size, 3))
  ids = rng.integers(2, spec.vocab, size=(b, ti)).astype(np.int32)
  return batch_lib.make_batch(ids, tgt, images=image)


def adam(learning_rate: float) -> Any:
  """praxis Adam at a constant rate, no clipping (`fiddle_configs.learner.constant_adam_learner`'s)."""
  cfg = pax_fiddle.Config(
    optimizers.Adam, learning_rate=learning_rate, lr_schedule=pax_fiddle.Config(schedules.Constant)
  )
  return pax_fiddle.build(cfg)


@dataclasses.dataclass
class ModelStep:
  """A jitted (params, opt_state, batch) -> (params, opt_state, loss) step, state donated."""

  compiled: Any
  params: Any
  opt_state: Any
  batch: NestedMap
  compile_s: float
  n_params: int

  def run(self) -> Any:
    """One training step; returns the loss (a jax scalar)."""
    self.params, self.opt_state, loss = self.compiled(self.params, self.opt_state, self.batch)
    return loss


def build_model_step(
  spec: configs.BenchSpec,
  opts: configs.ModelOptions = configs.LIBRARY_DEFAULT,
  learning_rate: float = 1e-4,
) -> ModelStep:
  """Instantiates the model, initialises params and Adam state, compiles the step."""
  model = base_layer.instantiate(configs.model_config(spec, opts))
  batch = jax.tree_util.tree_map(jnp.asarray, random_batch(spec))
  train_ctx = base_layer.JaxContext.HParams(do_eval=False)

  @jax.jit
  def init(key: jax.Array) -> Any:
    with base_layer.JaxContext.new_context(hparams=train_ctx):
      return model.init({base_layer.PARAMS: key, base_layer.RANDOM: key}, batch)

  variables = init(jax.random.PRNGKey(0))
  params = variables[base_layer.PARAMS]
  others = {k: v for k, v in variables.items() if k != base_layer.PARAMS}
  tx = adam(learning_rate).get_grad_transformation()
  opt_state = tx.init(params)

  def loss_fn(p: Any, b: NestedMap, key: jax.Array) -> jax.Array:
    with base_layer.JaxContext.new_context(hparams=train_ctx):
      (metrics, _), _ = model.apply(
        {**others, base_layer.PARAMS: p},
        b,
        rngs={base_layer.RANDOM: key},
        mutable=[base_layer.SUMMARIES, base_layer.AUX_LOSS],
      )
    return metrics['total_loss'][0]  # (mean, weight): paxml's learner minimises the mean

  def step(p: Any, state: Any, b: NestedMap) -> tuple[Any, Any, jax.Array]:
    loss, grads = jax.value_and_grad(loss_fn)(p, b, jax.random.PRNGKey(1))
    updates, state = tx.update(grads, state, p)
    return jax.tree_util.tree_map(jnp.add, p, updates), state, loss

  t0 = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, batch).compile()
  n_params = int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
  return ModelStep(compiled, params, opt_state, batch, time.perf_counter() - t0, n_params)
