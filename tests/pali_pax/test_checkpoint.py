"""Pax checkpoints from public-format mT5 / ViT checkpoints, and reading them back.

One conversion of PaliTinySynthetic (mT5 'tiny' with vocab 2100, ViT tiny/8 at 32 px)
from the random checkpoints in conftest; resuming it through paxml.main is tested
with the training loop elsewhere.
"""

import json
import os

import numpy as np
import pytest

from pali_pax import job_config
from pali_pax.checkpoint import job_meta, layout
from pali_pax.convert import components, load_mt5, load_vit, to_pax
from pali_pax.core.tree import CheckpointMismatchError
from pali_pax.fiddle_configs import registry
from pali_pax.inference import Predictor
from tests import tiny_job
from tests.numerics import assert_f32_close, pali_tiny_chain
from tests.paths import MT5_HF, VIT_NPZ
from tests.trees import assert_trees_equal

EXP, OVERRIDES = tiny_job.EXP, tiny_job.OVERRIDES


@pytest.fixture(scope='module')
def job_dir(tiny_pax_job):
  return tiny_pax_job


@pytest.fixture(scope='module')
def restored(job_dir):
  return job_config.load_model_params(job_dir)


def test_written_checkpoint_holds_the_converted_weights(
  job_dir, restored, mt5_hf_2100, vit_npz_tiny8
):
  assert layout.latest_step(job_dir) == 0
  with open(os.path.join(job_dir, job_meta.METADATA_FILE)) as f:
    meta = json.load(f)
  assert meta['experiment'] == EXP and meta['overrides'] == OVERRIDES
  assert meta['sources'] == {'mt5': mt5_hf_2100, 'vit': vit_npz_tiny8}
  exp, params = restored
  assert type(exp).__name__ == EXP and set(params) == {'mt5', 'vit', 'fusion'}
  assert (exp.MODEL, exp.IMAGE_SIZE, exp.VOCAB_SIZE) == ('tiny', 32, 2100)
  cfg = exp.model_config()
  assert_trees_equal(params['mt5'], load_mt5(mt5_hf_2100, cfg.mt5_tpl, progress=False), np.float32)
  assert_trees_equal(params['vit'], load_vit(vit_npz_tiny8, cfg.vit_tpl, image_size=32), np.float32)
  # The projection is no checkpoint's: freshly initialised (xavier weights, zero bias).
  w, b = params['fusion']['img_proj']['linear']['w'], params['fusion']['img_proj']['bias']['b']
  assert w.shape == (32, 32) and np.all(np.isfinite(w)) and 0.05 < w.std() < 0.5
  np.testing.assert_array_equal(b, np.zeros(32, np.float32))


def test_from_checkpoint_equals_components_predictor(job_dir, restored, mt5_hf_2100, vit_npz_tiny8):
  from_ckpt = Predictor.from_checkpoint(os.path.join(job_dir, 'checkpoints'))
  assert from_ckpt.vocab is not None and from_ckpt.vocab.vocab_size == 2100
  # The sizes read off the source checkpoints build the experiment's model.
  same = Predictor(components.model_config(mt5_hf_2100, vit_npz_tiny8), restored[1])
  ids = np.array([[5, 900, 17, 1, 0], [2000, 3, 1, 0, 0]], np.int32)
  dec = np.array([[0, 7, 8, 9], [0, 11, 0, 0]], np.int32)
  images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  got = from_ckpt.text_logits(ids, dec, images=images)
  assert got.shape == (2, 4, 2100)
  want = same.text_logits(ids, dec, images=images)
  assert_f32_close(got, want, pali_tiny_chain(8, 32, ids.shape[1], dec.shape[1]))


def test_existing_checkpoints_are_not_overwritten(job_dir, mt5_hf_2100):
  with pytest.raises(FileExistsError, match='already holds checkpoints'):
    to_pax.convert_to_pax(EXP, job_dir, mt5=mt5_hf_2100, overrides=OVERRIDES)


def test_mismatched_checkpoints_name_the_tensor(tmp_path, vit_npz_tiny8):
  # The committed mT5 fixture has vocabulary 128, the experiment 2100.
  with pytest.raises(CheckpointMismatchError, match=r'size 128 \(from shared\.weight\).*2100'):
    to_pax.convert_to_pax(EXP, str(tmp_path / 'a'), mt5=MT5_HF, overrides=OVERRIDES)
  # The committed ViT fixture has 7x7 patches, the experiment 8x8.
  with pytest.raises(CheckpointMismatchError, match=r'embedding/kernel'):
    to_pax.convert_to_pax(
      EXP,
      str(tmp_path / 'b'),
      vit=VIT_NPZ,
      overrides=OVERRIDES,
    )
  assert not os.path.exists(tmp_path / 'a' / 'checkpoints')


def test_unknown_experiment_and_missing_metadata(tmp_path):
  with pytest.raises(ValueError, match='unknown experiment'):
    to_pax.convert_to_pax('NoSuchExperiment', str(tmp_path))
  with pytest.raises(ValueError, match='pass experiment=NAME'):
    job_config.load_model_params(str(tmp_path))
  assert EXP in registry.names()
