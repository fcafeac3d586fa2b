"""The tiny experiment through the real `paxml.main` loop: learns, checkpoints, resumes.

One training run (shared by the tests here) costs about a minute of compile
and run on a 2-core CPU; the longer learning / determinism / 8-device runs are
marked slow (`make test-slow`).
"""

import os
import re

import numpy as np
import pytest


@pytest.fixture(scope='module')
def trained(tmp_path_factory, run_tiny, mt5_hf_2100, vit_npz_tiny8):
  from pali_pax import checkpoint

  job = tmp_path_factory.mktemp('tiny') / 'job'
  # Start from converted public-format checkpoints, as a user of the paper's
  # recipe would: paxml.main must pick up this step-0 Pax checkpoint.
  checkpoint.convert_to_pax('PaliTinySynthetic', str(job), mt5=mt5_hf_2100, vit=vit_npz_tiny8)
  first, _ = run_tiny(job, 120, '--eval_on_test', EVAL_EVERY=60, CHECKPOINT_EVERY=60)
  resumed, log = run_tiny(job, 180, EVAL_EVERY=60, CHECKPOINT_EVERY=60)
  return job, first, resumed, log


def test_checkpoints_and_summaries_in_pax_layout(trained):
  job, first, _, _ = trained
  steps = sorted(int(d.split('_')[-1]) for d in os.listdir(job / 'checkpoints'))
  assert steps[-1] == 180 and 120 in steps
  assert sorted(first) == [60, 120]
  assert os.listdir(job / 'summaries' / 'train')
  assert any(d.startswith('eval_test_') for d in os.listdir(job / 'summaries'))


def test_first_run_starts_from_the_converted_checkpoint(trained):
  job, _, _, _ = trained
  with open(job / 'run_120.log') as f:
    log = f.read()
  assert re.search(r'[Rr]estor\w* .*checkpoint_0+\b', log), 'did not restore the step-0 checkpoint'


def test_rerun_resumes_from_the_latest_checkpoint(trained):
  _, _, resumed, log = trained
  assert re.search(r'[Rr]estor\w* .*checkpoint_0*120', log), 'second run did not restore step 120'
  assert sorted(resumed) == [180]  # no step was trained twice


def test_training_beats_the_untrained_model(trained):
  from pali_pax import evaluation
  from pali_pax.fiddle_configs import experiments
  from pali_pax.inference import Predictor

  job, first, resumed, _ = trained
  assert first[120] < first[60]
  trained_p = Predictor.from_checkpoint(str(job), experiment='PaliTinySynthetic')
  # The untrained model: the same architecture at its initialisation.
  import jax
  from praxis import base_layer

  from pali_pax import batch as batch_lib

  cfg = trained_p.model_cfg
  model = base_layer.instantiate(cfg)
  batch = batch_lib.dummy_batch(cfg.vit_tpl.image_size)
  init = model.init({'params': jax.random.PRNGKey(7)}, batch, method=model.compute_predictions)
  untrained_p = Predictor(cfg, init['params'], trained_p.vocab)
  experiments.PaliTinySynthetic().register_tasks()
  task = experiments.PaliTinySynthetic.DECODE_TASKS[1]  # VQA
  nll_untrained = evaluation.validation_nll(untrained_p, task, n=32)
  nll_trained = evaluation.validation_nll(trained_p, task, n=32)
  # Chance is log(2100) ~ 7.6 nats per token; 180 steps already cut it sharply.
  assert nll_untrained > 6.0
  assert nll_trained < 0.6 * nll_untrained, (nll_untrained, nll_trained)
  assert np.isfinite(resumed[180])
