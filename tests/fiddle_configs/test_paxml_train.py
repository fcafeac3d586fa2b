"""The tiny experiment through the real `paxml.main` loop: learns, checkpoints, resumes.

One training run (shared by the tests here) costs about a minute of compile
and run on a 2-core CPU; the longer learning / determinism / 8-device runs are
marked slow (`make test-slow`).

What paxml.main restored is judged from the weights: the checkpoints' arrays
are read straight from their zarr files (tensorstore, the storage orbax
writes), independently of paxml's restore code.
"""

import os
import re

import numpy as np
import pytest
import tensorstore as ts
from flax import traverse_util

from pali_pax.core import params as params_lib
from tests.runs import run_tiny

PARAMS_PREFIX = 'mdl_vars.params.'


def saved_params(job, step: int) -> dict[str, np.ndarray]:
  """{'mt5.token_emb.emb_var': array, ...}: the `params` arrays of checkpoint `step`."""
  state = os.path.join(job, 'checkpoints', f'checkpoint_{step:08d}', 'state')
  out = {}
  for name in sorted(os.listdir(state)):
    if name.startswith(PARAMS_PREFIX):
      spec = {'driver': 'zarr', 'kvstore': {'driver': 'file', 'path': os.path.join(state, name)}}
      out[name[len(PARAMS_PREFIX) :]] = ts.open(spec).result().read().result()
  assert out, f'no parameters in {state}'
  return out


def flat(params: dict) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(params, sep='.').items()}


def distance(a: dict, b: dict, components=('mt5', 'vit')) -> float:
  """Euclidean distance over every array of `components` (the converted ones)."""
  keys = [k for k in a if k.split('.')[0] in components]
  assert keys and set(keys) <= set(b)
  return float(np.sqrt(sum(np.sum((a[k] - b[k]) ** 2) for k in keys)))


@pytest.fixture(scope='module')
def experiment():
  from pali_pax.fiddle_configs import experiments

  return experiments.PaliTinySynthetic()


@pytest.fixture(scope='module')
def converted(experiment, mt5_hf_2100, vit_npz_tiny8):
  """The weights the converted step-0 checkpoint starts from, flattened."""
  from pali_pax.convert import load_mt5, load_vit

  cfg = experiment.model_config()
  return flat(
    {
      'mt5': load_mt5(mt5_hf_2100, cfg.mt5_tpl, progress=False),
      'vit': load_vit(vit_npz_tiny8, cfg.vit_tpl, image_size=experiment.IMAGE_SIZE),
    }
  )


@pytest.fixture(scope='module')
def trained(tmp_path_factory, mt5_hf_2100, vit_npz_tiny8):
  from pali_pax.convert import to_pax

  job = tmp_path_factory.mktemp('tiny') / 'job'
  # Start from converted public-format checkpoints, as a user of the paper's
  # recipe would: paxml.main must pick up this step-0 Pax checkpoint.
  to_pax.convert_to_pax('PaliTinySynthetic', str(job), mt5=mt5_hf_2100, vit=vit_npz_tiny8)
  first, _ = run_tiny(job, 120, '--eval_on_test', EVAL_EVERY=60, CHECKPOINT_EVERY=60)
  resumed, log = run_tiny(job, 180, EVAL_EVERY=60, CHECKPOINT_EVERY=60)
  return job, first, resumed, log


@pytest.fixture(scope='module')
def untrained(experiment):
  """A fresh initialisation of the same model (what a run that restored nothing starts from)."""
  import jax
  from praxis import base_layer

  from pali_pax.core import batch as batch_lib

  cfg = params_lib.unsharded(experiment.model_config())
  model = base_layer.instantiate(cfg)
  batch = batch_lib.dummy_batch(cfg.vit_tpl.image_size)
  init = model.init({'params': jax.random.PRNGKey(7)}, batch, method=model.compute_predictions)
  return init['params']


def test_checkpoints_and_summaries_in_pax_layout(trained):
  job, first, _, _ = trained
  steps = sorted(int(d.split('_')[-1]) for d in os.listdir(job / 'checkpoints'))
  assert steps[-1] == 180 and 120 in steps
  assert sorted(first) == [60, 120]
  assert os.listdir(job / 'summaries' / 'train')
  assert any(d.startswith('eval_test_') for d in os.listdir(job / 'summaries'))


def test_restored_parameters_equal_the_saved_ones(trained):
  from pali_pax.inference import Predictor

  job = trained[0]
  restored = flat(Predictor.from_checkpoint(str(job), experiment='PaliTinySynthetic').params)
  saved = saved_params(job, 180)
  assert set(restored) == set(saved)
  for key, value in saved.items():
    np.testing.assert_array_equal(restored[key], value, err_msg=key)


def test_first_run_starts_from_the_converted_checkpoint(trained, converted, untrained):
  job = trained[0]
  with open(job / 'run_120.log') as f:
    assert re.search(r'[Rr]estor\w* .*checkpoint_0+\b', f.read()), 'no step-0 restore logged'
  # 60 small optimizer steps from the converted weights stay near them; any
  # start independent of them is at least as far away as a fresh init.
  start = distance(saved_params(job, 60), converted)
  fresh = distance(flat(untrained), converted)
  assert start < 0.5 * fresh, (start, fresh)


def test_rerun_resumes_from_the_latest_checkpoint(trained, converted):
  job, _, resumed, log = trained
  assert re.search(r'[Rr]estor\w* .*checkpoint_0*120', log), 'second run did not restore step 120'
  assert sorted(resumed) == [180]  # no step was trained twice
  # Step 180 continues step 120's weights: the last 60 steps (at a decayed
  # learning rate) moved them less than the 120 steps before.
  at_120 = saved_params(job, 120)
  assert distance(saved_params(job, 180), at_120) < distance(at_120, converted)


def test_training_beats_the_untrained_model(trained, untrained):
  from pali_pax import evaluation
  from pali_pax.fiddle_configs import experiments
  from pali_pax.inference import Predictor

  job, first, resumed, _ = trained
  assert first[120] < first[60]
  trained_p = Predictor.from_checkpoint(str(job), experiment='PaliTinySynthetic')
  untrained_p = Predictor(trained_p.model_cfg, untrained, trained_p.vocab)
  experiments.PaliTinySynthetic().register_tasks()
  task = experiments.PaliTinySynthetic.DECODE_TASKS[1]  # VQA
  nll_untrained = evaluation.validation_nll(untrained_p, task, n=32)
  nll_trained = evaluation.validation_nll(trained_p, task, n=32)
  # Chance is log(2100) ~ 7.6 nats per token; 180 steps already cut it sharply.
  assert nll_untrained > 6.0
  assert nll_trained < 0.6 * nll_untrained, (nll_untrained, nll_trained)
  assert np.isfinite(resumed[180])


def test_the_run_logs_what_trains(trained):
  """paxml.main's partitioned start logs the trainable count: here every parameter."""
  job, _, _, log = trained
  total = sum(int(np.prod(a.shape)) for a in saved_params(job, 120).values())
  m = re.search(r'pali_pax: trainable parameters ([\d,]+) of ([\d,]+) \(100%\)', log)
  assert m, 'no trainable-parameter line in the train log'
  assert int(m.group(1).replace(',', '')) == int(m.group(2).replace(',', '')) == total
