"""Long paxml.main runs (`make test-slow`): high accuracy, determinism, 8 devices."""

import os

import numpy as np
import pytest

from tests.runs import run_tiny

pytestmark = pytest.mark.slow


def test_same_seed_gives_the_same_losses(tmp_path):
  a, _ = run_tiny(tmp_path / 'a', 100, EVAL_EVERY=20, CHECKPOINT_EVERY=100)
  b, _ = run_tiny(tmp_path / 'b', 100, EVAL_EVERY=20, CHECKPOINT_EVERY=100)
  assert sorted(a) == [20, 40, 60, 80, 100]
  assert a == b


def test_sharded_training_on_8_devices_matches_one_device(tmp_path):
  one, _ = run_tiny(tmp_path / 'one', 60, EVAL_EVERY=20, CHECKPOINT_EVERY=60)
  eight, log = run_tiny(
    tmp_path / 'eight', 60, devices=8, EVAL_EVERY=20, CHECKPOINT_EVERY=60, ICI_MESH_SHAPE=(1, 2, 4)
  )
  assert "'data': 2, 'mdl': 4" in log.replace('"', "'")
  steps = sorted(one)
  np.testing.assert_allclose([eight[s] for s in steps], [one[s] for s in steps], rtol=2e-3)


def test_demo_budget_reaches_high_accuracy(tmp_path):
  """The demo's figures (docs/demo_recipe.md): its budget, measured by paxml's decode."""
  from pali_pax import evaluation
  from pali_pax.fiddle_configs import experiments

  steps = experiments.PaliTinySynthetic.NUM_TRAIN_STEPS
  run_tiny(tmp_path, steps, '--eval_on_test', '--decode_during_train')
  scalars = evaluation.summary_scalars(str(tmp_path))

  def final(task, metric):
    return scalars[f'decode_test_pali_synthetic_{task}_32'][f'decoder/{metric}'][1]

  # 64 held-out examples per task; bounds well below docs/demo_recipe.md, well above chance.
  assert final('vqa', 'exact_match') > 50.0  # chance is below 15% (5 colours, 3 shapes, counts)
  assert final('caption', 'cider') > 200.0
  assert final('caption', 'exact_match') > 15.0
  assert final('ocr', 'exact_match') > 5.0  # chance 2.5% (40 words)
  assert final('detection', 'recall50') > 5.0  # boxes at IoU >= 0.5, labels right
  assert os.listdir(tmp_path / 'decoder_out')
