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

from pali_pax.convert import export_mt5, export_vit, load_mt5, load_vit, mt5_hf, vit
from pali_pax.core.errors import CheckpointMismatchError
from tests.paths import MT5_HF, VIT_HF, VIT_NPZ
from tests.trees import assert_same_tensors, assert_trees_equal


@pytest.mark.parametrize('scan', [False, True])
def test_mt5_fixture_exports_back_to_its_own_tensors(tmp_path, scan):
  cfg = mt5_hf.mt5_config_from_hf(MT5_HF, scan=scan)
  params = load_mt5(MT5_HF, cfg, progress=False)
  out = export_mt5.export_mt5_hf(params, cfg, str(tmp_path / 'mt5'))
  original = st_numpy.load_file(os.path.join(MT5_HF, 'model.safetensors'))
  assert_same_tensors(st_numpy.load_file(os.path.join(out, 'model.safetensors')), original)
  with open(os.path.join(MT5_HF, 'config.json')) as f:
    want = json.load(f)
  with open(os.path.join(out, 'config.json')) as f:
    got = json.load(f)
  for key in (*mt5_hf.CONFIG_SIZES, 'feed_forward_proj', 'tie_word_embeddings', 'model_type'):
    assert got[key] == want[key], key
  for key in ('layer_norm_epsilon', 'pad_token_id', 'eos_token_id', 'decoder_start_token_id'):
    assert got[key] == want[key], key
  assert_trees_equal(load_mt5(out, cfg, progress=False), params)


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
  assert_same_tensors(got, original)
  assert vit.vit_config_from_checkpoint(out) == cfg
  assert_trees_equal(load_vit(out, cfg), params)


def test_params_that_do_not_fit_are_named(tmp_path):
  cfg = mt5_hf.mt5_config_from_hf(MT5_HF)
  params = copy.deepcopy(load_mt5(MT5_HF, cfg, progress=False))
  del params['decoder']['final_norm']
  with pytest.raises(CheckpointMismatchError, match='missing tensor for decoder/final_norm/scale'):
    export_mt5.export_mt5_hf(params, cfg, str(tmp_path / 'x'))
