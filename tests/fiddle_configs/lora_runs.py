"""Shared by test_trainable_lora_slow.py and test_trainable_slow.py: an experiment's task as paxml runs it.

A random tiny PaLI checkpoint (`convert_to_pax`, step 0) is INIT_FROM; the
experiment's task is initialised as paxml.main does it
(`trainer_lib.initialize_partitioned_model_states` with the experiment's init
rules, one-device mesh) and trained by `train_step_single_learner` (paxml's
learner, optimizer and gradient masks) on random batches.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from paxml import trainer_lib
from paxml.checkpoint_types import CheckpointType
from praxis import base_layer, py_utils

from pali_pax.core import batch as batch_lib
from pali_pax.fiddle_configs import experiments
from pali_pax.tasks import vocab

BATCH = 2
OVERRIDES = {'BATCH_SIZE': BATCH, 'WARMUP_STEPS': 1, 'LEARNING_RATE': 1e-2, 'LORA_RANK': 4}


def random_batch(exp, seed: int) -> py_utils.NestedMap:
  """A batch of the experiment's train shapes: random ids, images and full loss weights."""
  rng = np.random.default_rng(seed)
  specs = batch_lib.batch_specs(exp.IMAGE_SIZE, BATCH, exp.INPUT_LEN, exp.TARGET_LEN)
  out = py_utils.NestedMap()
  for name, s in specs.items():
    if np.issubdtype(s.dtype, np.integer):
      out[name] = rng.integers(2, vocab.SYNTHETIC_VOCAB_SIZE, s.shape).astype(s.dtype)
    elif name == 'image':
      out[name] = rng.uniform(-1, 1, s.shape).astype(s.dtype)
    else:
      out[name] = np.ones(s.shape, s.dtype)
  return jax.tree_util.tree_map(jnp.asarray, out)


class Run:
  """An experiment's task initialised through paxml (INIT_FROM applied), then trained."""

  def __init__(self, exp):
    self.exp = exp
    task_p = exp.task()
    self.task = base_layer.instantiate(task_p)
    specs = batch_lib.batch_specs(exp.IMAGE_SIZE, BATCH, exp.INPUT_LEN, exp.TARGET_LEN)
    meta = trainer_lib.create_train_state_metadata(self.task, specs)
    self.wps = meta.var_weight_hparams
    devices = np.array(jax.devices()[:1]).reshape(1, 1, 1)
    self.mesh = jax.sharding.Mesh(devices, task_p.model.mesh_axis_names)
    with self.mesh:
      self.state, _ = trainer_lib.initialize_partitioned_model_states(
        self.task,
        jax.random.PRNGKey(1),
        specs,
        meta.partition_specs,
        global_mesh=self.mesh,
        checkpoint_type=CheckpointType.GDA,
        var_weight_hparams=self.wps,
      )
    self.initial = jax.tree_util.tree_map(np.asarray, self.state.mdl_vars['params'])

  def logits(self, params: dict, batch: py_utils.NestedMap) -> np.ndarray:
    with self.mesh, base_layer.JaxContext.new_context():
      out = self.task.model.apply(
        {'params': params}, batch, method=self.task.model.compute_predictions
      )
    return np.asarray(out.logits)

  def train(self, steps: int) -> dict:
    step = jax.jit(
      functools.partial(
        trainer_lib.train_step_single_learner, self.task, var_weight_hparams=self.wps
      )
    )
    with self.mesh:
      for i in range(steps):
        self.state, out = step(self.state, jax.random.PRNGKey(i), random_batch(self.exp, i))
        assert np.isfinite(float(out.loss))
    return jax.tree_util.tree_map(np.asarray, self.state.mdl_vars['params'])


def flat(params: dict) -> dict[str, np.ndarray]:
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return {'/'.join(str(k.key) for k in path): np.asarray(x) for path, x in leaves}


def experiment(base_job: str, trainable_value, **extra):
  return experiments.PaliTinySynthetic(
    TRAINABLE=trainable_value, INIT_FROM=f'{base_job}/checkpoints', **OVERRIDES, **extra
  )
