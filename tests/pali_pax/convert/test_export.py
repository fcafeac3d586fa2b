"""Exports round-trip: params -> HF MT5 / big_vision .npz / HF SigLIP -> our converters -> params.

The committed HF fixtures are the independent reference: loading one and exporting
it again must give back its tensors bit for bit.
"""

import copy
import json
import os

import numpy as np
import pytest
from safetensors import numpy as st_numpy

from pali_pax import checkpoint, cli
from pali_pax.convert import components, export_mt5, export_vit, load_mt5, load_vit, mt5_hf, vit
from pali_pax.convert.export import SPIECE
from pali_pax.convert.tree import flatten
from pali_pax.errors import CheckpointMismatchError
from pali_pax.inference import Predictor
from tests.numerics import assert_f32_close, pali_tiny_chain

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), 'fixtures')
MT5_HF = os.path.join(FIXTURES, 'mt5_hf_tiny')
VIT_HF = os.path.join(FIXTURES, 'vit_siglip_tiny')
VIT_NPZ = os.path.join(FIXTURES, 'vit_bigvision_tiny.npz')
POOLING_HEADS = ('vision_model.head.', 'MAPHead_0/', 'head/')  # PaLI's ViT has none


def _assert_trees_equal(got, want):
  got, want = flatten(got), flatten(want)
  assert set(got) == set(want)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def _assert_same_tensors(got, original):
  """`got` holds every tensor of `original` except pooling heads, bit for bit."""
  kept = {k for k in original if not k.startswith(POOLING_HEADS)}
  assert set(got) == kept
  for key in kept:
    assert got[key].dtype == np.float32
    np.testing.assert_array_equal(got[key], original[key], err_msg=key)


@pytest.mark.parametrize('scan', [False, True])
def test_mt5_fixture_exports_back_to_its_own_tensors(tmp_path, scan):
  cfg = mt5_hf.mt5_config_from_hf(MT5_HF, scan=scan)
  params = load_mt5(MT5_HF, cfg, progress=False)
  out = export_mt5.export_mt5_hf(params, cfg, str(tmp_path / 'mt5'))
  original = st_numpy.load_file(os.path.join(MT5_HF, 'model.safetensors'))
  _assert_same_tensors(st_numpy.load_file(os.path.join(out, 'model.safetensors')), original)
  with open(os.path.join(MT5_HF, 'config.json')) as f:
    want = json.load(f)
  with open(os.path.join(out, 'config.json')) as f:
    got = json.load(f)
  for key in (*mt5_hf.CONFIG_SIZES, 'feed_forward_proj', 'tie_word_embeddings', 'model_type'):
    assert got[key] == want[key], key
  for key in ('layer_norm_epsilon', 'pad_token_id', 'eos_token_id', 'decoder_start_token_id'):
    assert got[key] == want[key], key
  _assert_trees_equal(load_mt5(out, cfg, progress=False), params)


@pytest.mark.parametrize(
  ('source', 'export'),
  [(VIT_HF, export_vit.export_vit_hf), (VIT_NPZ, export_vit.export_vit_big_vision)],
)
def test_vit_fixtures_export_back_to_their_own_tensors(tmp_path, source, export):
  cfg = vit.vit_config_from_checkpoint(source)
  assert cfg.scan  # exercises unstacking
  params = load_vit(source, cfg)
  hf = source == VIT_HF
  out = export(params, cfg, str(tmp_path / ('vit' if hf else 'vit.npz')))
  if hf:
    original = st_numpy.load_file(os.path.join(source, 'model.safetensors'))
    got = st_numpy.load_file(os.path.join(out, 'model.safetensors'))
    with open(os.path.join(out, 'config.json')) as f:
      config = json.load(f)
    assert config['vision_use_head'] is False and config['model_type'] == 'siglip_vision_model'
  else:
    with np.load(source) as npz:
      original = {k: npz[k] for k in npz.files}
    with np.load(out) as npz:
      got = {k: npz[k] for k in npz.files}
  _assert_same_tensors(got, original)
  assert vit.vit_config_from_checkpoint(out) == cfg
  _assert_trees_equal(load_vit(out, cfg), params)


def test_params_that_do_not_fit_are_named(tmp_path):
  cfg = mt5_hf.mt5_config_from_hf(MT5_HF)
  params = copy.deepcopy(load_mt5(MT5_HF, cfg, progress=False))
  del params['decoder']['final_norm']
  with pytest.raises(CheckpointMismatchError, match='missing tensor for decoder/final_norm/scale'):
    export_mt5.export_mt5_hf(params, cfg, str(tmp_path / 'x'))


@pytest.mark.slow
def test_cli_exports_a_job_dir_and_the_exports_give_the_same_logits(
  tmp_path, mt5_hf_2100, vit_npz_tiny8
):
  job = str(tmp_path / 'job')
  overrides = {'MODEL': 'tiny', 'IMAGE_SIZE': 32, 'VOCAB_SIZE': 2100}
  checkpoint.convert_to_pax(
    'PaliTinySynthetic', job, mt5=mt5_hf_2100, vit=vit_npz_tiny8, seed=3, overrides=overrides
  )
  out = {k: str(tmp_path / v) for k, v in (('mt5', 'mt5'), ('npz', 'vit.npz'), ('hf', 'vit'))}
  argv = ['export', job, '--mt5_out', out['mt5'], '--vit_npz', out['npz'], '--vit_hf', out['hf']]
  assert cli.main(argv) == 0
  assert os.path.isfile(os.path.join(out['mt5'], SPIECE))

  # Through a Pax checkpoint and back out: the source checkpoints' own tensors.
  mt5_src = st_numpy.load_file(os.path.join(mt5_hf_2100, 'model.safetensors'))
  _assert_same_tensors(st_numpy.load_file(os.path.join(out['mt5'], 'model.safetensors')), mt5_src)
  with np.load(vit_npz_tiny8) as npz:
    vit_src = {k: npz[k] for k in npz.files}
  with np.load(out['npz']) as npz:
    _assert_same_tensors({k: npz[k] for k in npz.files}, vit_src)

  # Our converters read the exports back to the trained params; same logits.
  _, trained = checkpoint.load_model_params(job)
  cfg = components.model_config(out['mt5'], out['hf'])
  reloaded = {
    'mt5': load_mt5(out['mt5'], cfg.mt5_tpl, progress=False),
    'vit': load_vit(out['hf'], cfg.vit_tpl),
    'fusion': trained['fusion'],  # no public format: taken from the job
  }
  _assert_trees_equal(reloaded['mt5'], trained['mt5'])
  _assert_trees_equal(reloaded['vit'], trained['vit'])
  _assert_trees_equal(load_vit(out['npz'], cfg.vit_tpl), trained['vit'])
  ids = np.array([[5, 900, 17, 1, 0], [2000, 3, 1, 0, 0]], np.int32)
  dec = np.array([[0, 7, 8, 9], [0, 11, 0, 0]], np.int32)
  images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  want = Predictor(components.model_config(mt5_hf_2100, vit_npz_tiny8), trained)
  got = Predictor(cfg, reloaded).text_logits(ids, dec, images=images)
  assert got.shape == (2, 4, 2100)
  want_logits = want.text_logits(ids, dec, images=images)
  assert_f32_close(got, want_logits, pali_tiny_chain(8, 32, ids.shape[1], dec.shape[1]))
