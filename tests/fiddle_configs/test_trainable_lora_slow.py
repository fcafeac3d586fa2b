"""TRAINABLE and LoRA at initialisation, through paxml's own init with INIT_FROM (`lora_runs`).

(b) step-0 logits under 'lora' equal the base model's (B = 0);
(c) the optimizer state paxml creates is proportional to the trainable parameters
    (Adam: m and v, float32, for each trainable parameter), measured on the state.
Training steps (frozen variables stay bit-identical): test_trainable_slow.py.
"""

import re

import jax
import numpy as np
import pytest
from praxis import base_layer

from pali_pax import job_config
from pali_pax.convert import to_pax
from pali_pax.fiddle_configs import learner, trainable
from tests.fiddle_configs import lora_runs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('absl_flags_parsed')]


@pytest.fixture(scope='module')
def base_job(tmp_path_factory) -> str:
  job = tmp_path_factory.mktemp('base')
  to_pax.convert_to_pax('PaliTinySynthetic', str(job), seed=0)
  return str(job)


@pytest.fixture(scope='module')
def lora_run(base_job) -> lora_runs.Run:
  return lora_runs.Run(lora_runs.experiment(base_job, 'lora'))


def test_lora_step0_logits_equal_the_base_model(base_job, lora_run):
  base = job_config.load_model_params(base_job)[1]
  flat = lora_runs.flat(lora_run.initial)
  assert any(k.endswith('lora_a') for k in flat)
  # B = 0 at the start, A random: the adapters add exactly nothing.
  assert all(not np.any(v) for k, v in flat.items() if k.endswith('lora_b'))
  batch = lora_runs.random_batch(lora_run.exp, 100)
  base_model = base_layer.instantiate(lora_runs.experiment(base_job, 'all').model_config())
  with lora_run.mesh, base_layer.JaxContext.new_context():
    want = base_model.apply({'params': base}, batch, method=base_model.compute_predictions).logits
  np.testing.assert_array_equal(lora_run.logits(lora_run.initial, batch), np.asarray(want))


def opt_state_bytes(run: lora_runs.Run) -> int:
  """Bytes of the optimizer state's arrays (not its scalar step counters)."""
  leaves = jax.tree_util.tree_leaves(run.state.opt_states)
  return sum(x.size * x.dtype.itemsize for x in leaves if x.ndim > 0)


def check_proportional(run: lora_runs.Run, preset) -> dict:
  s = trainable.summary(run.state.mdl_vars, run.wps, run.task.learners[0], run.state.opt_states)
  flat = lora_runs.flat(run.initial)
  inclusion, exclusion = learner.trainable_rules(preset)

  def trains(name: str) -> bool:
    full = f'params/{name}'
    if inclusion:
      return any(re.fullmatch(p, full) for p in inclusion)
    return not any(re.fullmatch(p, full) for p in exclusion)

  assert s['trainable'] == sum(x.size for k, x in flat.items() if trains(k)) > 0
  assert s['total'] == sum(x.size for x in flat.values())
  # Adam: m and v (float32) per trainable parameter; praxis adds a few bytes of
  # per-learner bookkeeping arrays (32 here), nothing per frozen parameter.
  overhead = opt_state_bytes(run) - 2 * 4 * s['trainable']
  assert 0 <= overhead <= 64, (preset, overhead, s)
  return s


def test_lora_optimizer_state_is_proportional_to_trainable_params(lora_run):
  s = check_proportional(lora_run, 'lora')
  # Rank 4 on every tiny projection: a fifth of the tiny model; pod sizes in docs/pods.md.
  assert s['trainable'] < 0.25 * s['total']
