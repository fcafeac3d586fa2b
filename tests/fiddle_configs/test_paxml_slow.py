"""Long paxml.main runs (`make test-slow`): high accuracy, determinism, 8 devices."""

import os

import numpy as np
import pytest

from tests.runs import run_cli, run_tiny

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


# Issue 23's goals (caption >= 50%, OCR >= 50%, mAP@0.5 >= 30) where both seeds cleared
# them by a margin (docs/demo_recipe.md: 59.4 / 98.4 / 43.5 at the lower seed); VQA a
# little under its goal of 80 (84.4% at the lower seed is 3 examples above it).
CAPTION_BOUND, CIDER_BOUND, VQA_BOUND, OCR_BOUND = 50.0, 550.0, 78.0, 90.0
MAP_BOUND, RECALL_BOUND = 30.0, 50.0


@pytest.mark.parametrize('seed', [1234, 7])
def test_demo_budget_reaches_high_accuracy(tmp_path, seed):
  """`pali-pax demo` (ViT pretraining, conversion, paxml.main) on two data seeds:
  the figures of docs/demo_recipe.md, measured by paxml's decode."""
  from pali_pax import evaluation

  run_cli('demo', '--job_dir', tmp_path, '--seed', seed, log_path=tmp_path.parent / 'demo.log')
  scalars = evaluation.summary_scalars(str(tmp_path))

  def final(task, metric):
    return scalars[f'decode_test_pali_synthetic_{task}_32'][f'decoder/{metric}'][1]

  # 64 held-out examples per task (one is 1.6 points); bounds below what both seeds
  # reached (docs/demo_recipe.md), far above chance.
  assert final('vqa', 'exact_match') > VQA_BOUND  # chance below 15% (colours, shapes, counts)
  assert final('caption', 'cider') > CIDER_BOUND
  assert final('caption', 'exact_match') > CAPTION_BOUND
  assert final('ocr', 'exact_match') > OCR_BOUND  # chance 2.5% (40 words)
  assert final('detection', 'recall50') > RECALL_BOUND  # boxes at IoU >= 0.5, labels right
  assert final('detection', 'map50') > MAP_BOUND
  assert os.listdir(tmp_path / 'decoder_out')
