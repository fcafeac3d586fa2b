"""`pali-pax export JOB_DIR`: a Pax job dir out to HF MT5 / big_vision / HF SigLIP and back.

The job is a Pax checkpoint converted from random public-format checkpoints
(tests/conftest.py), so the exports must give back those checkpoints' tensors, and our
converters the job's params and logits.
"""

import os

import numpy as np
import pytest
from safetensors import numpy as st_numpy

from pali_pax import cli, job_config
from pali_pax.convert import components, load_mt5, load_vit, to_pax
from pali_pax.convert.export import SPIECE
from pali_pax.inference import Predictor
from tests.numerics import assert_f32_close, pali_tiny_chain
from tests.trees import assert_same_tensors, assert_trees_equal

pytestmark = pytest.mark.slow


def test_cli_exports_a_job_dir_and_the_exports_give_the_same_logits(
  tmp_path, mt5_hf_2100, vit_npz_tiny8
):
  job = str(tmp_path / 'job')
  overrides = {'MODEL': 'tiny', 'IMAGE_SIZE': 32, 'VOCAB_SIZE': 2100}
  to_pax.convert_to_pax(
    'PaliTinySynthetic', job, mt5=mt5_hf_2100, vit=vit_npz_tiny8, seed=3, overrides=overrides
  )
  out = {k: str(tmp_path / v) for k, v in (('mt5', 'mt5'), ('npz', 'vit.npz'), ('hf', 'vit'))}
  argv = ['export', job, '--mt5_out', out['mt5'], '--vit_npz', out['npz'], '--vit_hf', out['hf']]
  assert cli.main(argv) == 0
  assert os.path.isfile(os.path.join(out['mt5'], SPIECE))

  # Through a Pax checkpoint and back out: the source checkpoints' own tensors.
  mt5_src = st_numpy.load_file(os.path.join(mt5_hf_2100, 'model.safetensors'))
  assert_same_tensors(st_numpy.load_file(os.path.join(out['mt5'], 'model.safetensors')), mt5_src)
  with np.load(vit_npz_tiny8) as npz:
    vit_src = {k: npz[k] for k in npz.files}
  with np.load(out['npz']) as npz:
    assert_same_tensors({k: npz[k] for k in npz.files}, vit_src)

  # Our converters read the exports back to the trained params; same logits.
  _, trained = job_config.load_model_params(job)
  cfg = components.model_config(out['mt5'], out['hf'])
  reloaded = {
    'mt5': load_mt5(out['mt5'], cfg.mt5_tpl, progress=False),
    'vit': load_vit(out['hf'], cfg.vit_tpl),
    'fusion': trained['fusion'],  # no public format: taken from the job
  }
  assert_trees_equal(reloaded['mt5'], trained['mt5'])
  assert_trees_equal(reloaded['vit'], trained['vit'])
  assert_trees_equal(load_vit(out['npz'], cfg.vit_tpl), trained['vit'])
  ids = np.array([[5, 900, 17, 1, 0], [2000, 3, 1, 0, 0]], np.int32)
  dec = np.array([[0, 7, 8, 9], [0, 11, 0, 0]], np.int32)
  images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  want = Predictor(components.model_config(mt5_hf_2100, vit_npz_tiny8), trained)
  got = Predictor(cfg, reloaded).text_logits(ids, dec, images=images)
  assert got.shape == (2, 4, 2100)
  want_logits = want.text_logits(ids, dec, images=images)
  assert_f32_close(got, want_logits, pali_tiny_chain(8, 32, ids.shape[1], dec.shape[1]))
