"""TRAINABLE through paxml's train step (`lora_runs`): slow (a train-step compile per preset).

(a) after a few steps under 'lora' and 'no_vit', every frozen variable is
    bit-identical to INIT_FROM's, while the trainable ones moved;
(c) for every preset, the optimizer state is proportional to what trains.
"""

import numpy as np
import pytest

from pali_pax import job_config
from tests.fiddle_configs import lora_runs
from tests.fiddle_configs.test_trainable_lora_slow import base_job, check_proportional

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('absl_flags_parsed')]
__all__ = ['base_job']

STEPS = 3


@pytest.mark.parametrize('preset', ['lora', 'no_vit'])
def test_frozen_variables_stay_bit_identical_to_init_from(base_job, preset):
  run = lora_runs.Run(lora_runs.experiment(base_job, preset))
  before = lora_runs.flat(run.initial)
  after = lora_runs.flat(run.train(STEPS))
  base = lora_runs.flat(job_config.load_model_params(base_job)[1])
  adapters = {k for k in after if k.endswith(('lora_a', 'lora_b'))}
  if preset == 'lora':
    assert adapters and set(after) - adapters == set(base)
    # The adapters' B matrices moved off zero: the run did train.
    assert any(np.any(after[k] != 0) for k in adapters if k.endswith('lora_b'))
    frozen = set(base)
  else:
    assert not adapters and set(after) == set(base)
    frozen = {k for k in base if k.startswith('vit/')}
    assert any(np.any(after[k] != base[k]) for k in set(base) - frozen), 'nothing trained'
  for name in sorted(frozen):
    np.testing.assert_array_equal(before[name], base[name], err_msg=f'init {name}')
    np.testing.assert_array_equal(after[name], base[name], err_msg=f'after {STEPS} steps {name}')


@pytest.mark.parametrize('preset', ['all', 'no_vit', 'decoder', 'attention'])
def test_optimizer_state_is_proportional_to_trainable_params(base_job, preset):
  run = lora_runs.Run(lora_runs.experiment(base_job, preset))
  s = check_proportional(run, preset)
  assert (s['trainable'] < s['total']) == (preset != 'all')
