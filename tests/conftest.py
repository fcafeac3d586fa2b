"""Checkpoints written once per session (predictor, Pax-checkpoint and paxml tests).

  mt5_hf_2100   HF mT5 directory: mT5 'tiny' dims (as PaliTinySynthetic), vocab 2100
                (the shipped synthetic SentencePiece model), 32 buckets / distance 128
  vit_npz_tiny8 big_vision .npz of ViT 'tiny/8' at 32 px (PaliTinySynthetic's ViT)
  make_coco_dir `tests/fixtures/coco_data.make_coco_dir(root, n_train, n_val)`: a COCO
                captions 2014 folder (real JPEGs, official annotation JSON)
  mt5_t5x_dir   mt5_hf_2100 as a T5X checkpoint (T5X stores no max distance: its
                network.py hard-codes mT5's 128, which is what a loader assumes)

Random values (std 0.3) so every tensor matters; names and layouts are taken from
the committed fixtures, only the vocabulary / bucket / patch shapes change.
"""

import importlib.util
import json
import os

import numpy as np
import pytest
from safetensors import numpy as st_numpy

TESTS = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(TESTS, 'fixtures')
MT5_HF = os.path.join(FIXTURES, 'mt5_hf_tiny')
VIT_NPZ = os.path.join(FIXTURES, 'vit_bigvision_tiny.npz')
MT5_CONVERT_TESTS = os.path.join(TESTS, 'pali_pax', 'convert', 'test_mt5_convert.py')


def mt5_convert_helpers():
  """tests/pali_pax/convert/test_mt5_convert.py as a module (its `hf_to_t5x`, `write_t5x`)."""
  spec = importlib.util.spec_from_file_location('_mt5_convert_helpers', MT5_CONVERT_TESTS)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def write_random_hf_mt5(directory, vocab_size=2100, buckets=32, max_distance=128, seed=0):
  """The fixture's HF mT5 layout with a new vocabulary / bucket count, random values."""
  rng = np.random.default_rng(seed)
  tensors = st_numpy.load_file(os.path.join(MT5_HF, 'model.safetensors'))
  out = {}
  for name, value in tensors.items():
    shape = list(value.shape)
    if name in ('shared.weight', 'lm_head.weight'):
      shape[0] = vocab_size
    if 'relative_attention_bias' in name:
      shape[0] = buckets
    base = 1.0 if 'layer_norm' in name else 0.0
    out[name] = (base + 0.3 * rng.standard_normal(shape)).astype(np.float32)
  with open(os.path.join(MT5_HF, 'config.json')) as f:
    config = json.load(f)
  config.update(
    vocab_size=vocab_size,
    relative_attention_num_buckets=buckets,
    relative_attention_max_distance=max_distance,
  )
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, 'config.json'), 'w') as f:
    json.dump(config, f)
  st_numpy.save_file(out, os.path.join(directory, 'model.safetensors'))
  return str(directory)


def write_random_vit_npz(path, patch=8, seed=0):
  """The fixture's big_vision layout (width 32, depth 2, 16 tokens) with patch `patch`."""
  rng = np.random.default_rng(seed)
  with np.load(VIT_NPZ) as npz:
    arrays = {k: npz[k] for k in npz.files}
  out = {}
  for name, value in arrays.items():
    shape = (patch, patch, 3, value.shape[-1]) if name == 'embedding/kernel' else value.shape
    base = 1.0 if name.endswith('/scale') else 0.0
    out[name] = (base + 0.3 * rng.standard_normal(shape)).astype(np.float32)
  np.savez(path, **out)
  return str(path)


@pytest.fixture(scope='session')
def make_coco_dir():
  spec = importlib.util.spec_from_file_location(
    '_coco_data', os.path.join(FIXTURES, 'coco_data.py')
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.make_coco_dir


@pytest.fixture(scope='session')
def mt5_hf_2100(tmp_path_factory):
  return write_random_hf_mt5(tmp_path_factory.mktemp('mt5_hf_2100'))


@pytest.fixture(scope='session')
def vit_npz_tiny8(tmp_path_factory):
  return write_random_vit_npz(tmp_path_factory.mktemp('vit') / 'vit_tiny8_32px.npz')


@pytest.fixture(scope='session')
def mt5_t5x_dir(tmp_path_factory, mt5_hf_2100):
  helpers = mt5_convert_helpers()
  tensors = st_numpy.load_file(os.path.join(mt5_hf_2100, 'model.safetensors'))
  return helpers.write_t5x(tmp_path_factory.mktemp('mt5_t5x'), helpers.hf_to_t5x(tensors))
