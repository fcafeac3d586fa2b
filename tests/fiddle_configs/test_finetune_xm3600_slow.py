"""PaliFinetuneXm3600 trains: real paxml train steps on its COCO input change the model."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from paxml import trainer_lib
from praxis import base_hyperparams, base_layer

from pali_pax.core import params as params_lib
from pali_pax.fiddle_configs import experiments

pytestmark = pytest.mark.slow  # compiles a train step (~40 s on 2 cores)


def test_train_step_on_its_coco_input_changes_the_model(xm3600_dirs):
  """One real paxml train step of the experiment's task on a batch of its train input."""
  coco, xm = xm3600_dirs
  # WARMUP_STEPS=1: the rate is 0 at step 0 and the peak at step 1, so step 2 updates.
  exp = experiments.PaliFinetuneXm3600Tiny(
    DATA_DIR=coco, EVAL_DATA_DIR=xm, BATCH_SIZE=2, WARMUP_STEPS=1
  )
  train = base_hyperparams.instantiate(exp.datasets()[0])
  batches = [jax.tree_util.tree_map(jnp.asarray, train.get_next()) for _ in range(2)]
  assert batches[0].image.shape == (2, exp.IMAGE_SIZE, exp.IMAGE_SIZE, 3)
  task_p = exp.task()
  task_p.model = params_lib.unsharded(task_p.model)  # one CPU device, no mesh context
  task = base_layer.instantiate(task_p)
  shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batches[0])
  with base_layer.JaxContext.new_context(hparams=base_layer.JaxContext.HParams(do_eval=False)):
    wps = task.model.abstract_init_with_metadata(shapes)
  states, _ = trainer_lib.initialize_model_state(
    task, jax.random.PRNGKey(0), shapes, do_init_checkpoint_rules=False, var_weight_hparams=wps
  )
  before = jax.tree_util.tree_map(np.asarray, states.mdl_vars)
  step = jax.jit(
    functools.partial(trainer_lib.train_step_single_learner, task, var_weight_hparams=wps)
  )
  losses = []
  for i, batch in enumerate(batches):
    states, out = step(states, jax.random.PRNGKey(i), batch)
    losses.append(float(out.loss))
  assert all(np.isfinite(losses)) and losses[0] > 0, losses
  changed = jax.tree_util.tree_map(
    lambda a, b: bool(np.any(a != np.asarray(b))), before, states.mdl_vars
  )
  assert changed['params']['mt5'] and all(jax.tree_util.tree_leaves(changed['params']['vit']))
