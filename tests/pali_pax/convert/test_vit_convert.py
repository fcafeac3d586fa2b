"""ViT converters: parity with HF SiglipVisionModel through both formats, strictness."""

import json
import os
import shutil
import sys

import jax
import numpy as np
import pytest
from praxis import base_layer
from safetensors.numpy import load_file, save_file

from pali_pax.convert.vit import (
  load_vit,
  load_vit_big_vision,
  load_vit_hf,
  vit_config_from_checkpoint,
)
from pali_pax.core.errors import CheckpointMismatchError, FileFormatError
from pali_pax.core.tree import flatten
from pali_pax.fiddle_configs.vit import vit_config
from pali_pax.layers.vit import resample_posemb
from tests.numerics import assert_f32_close, vit_chain
from tests.paths import VIT_HF as HF_DIR
from tests.paths import VIT_NPZ as BV_NPZ
from tests.paths import VIT_REF

REF = np.load(VIT_REF)
# vit_siglip_tiny/config.json; the reference is float32 (HF SiglipVisionModel).
VIT_CHAIN = vit_chain(width=32, depth=2, mlp=64, heads=4, patch=7, tokens=16)
LAYERS = {}


def cfg(scan=True, image_size=28):
  return vit_config('tiny/7', image_size=image_size, scan=scan)


def forward(params, scan=True, image_size=28, images=None):
  key = (scan, image_size)
  if key not in LAYERS:
    layer = base_layer.instantiate(cfg(scan, image_size))
    LAYERS[key] = jax.jit(lambda p, x: layer.apply({'params': p}, x))
  return np.asarray(LAYERS[key](params, REF['images'] if images is None else images))


def dims(vit_cfg):
  names = ('image_size', 'patch_size', 'width', 'depth', 'mlp_dim', 'num_heads', 'posemb', 'scan')
  return {k: getattr(vit_cfg, k) for k in names}


def test_config_from_either_format():
  for path in (HF_DIR, BV_NPZ, os.path.join(HF_DIR, 'config.json')):
    assert dims(vit_config_from_checkpoint(path)) == dims(cfg()), path


def bv_arrays():
  with np.load(BV_NPZ) as f:
    return {k: f[k] for k in f.files}


def write_npz(tmp_path, arrays, name='ckpt.npz'):
  path = os.path.join(tmp_path, name)
  np.savez(path, **arrays)
  return path


def copy_hf(tmp_path, edit=None, config_edit=None):
  out = os.path.join(tmp_path, 'hf')
  shutil.copytree(HF_DIR, out)
  if edit is not None:
    tensors = load_file(os.path.join(out, 'model.safetensors'))
    edit(tensors)
    save_file(tensors, os.path.join(out, 'model.safetensors'))
  if config_edit is not None:
    with open(os.path.join(out, 'config.json')) as f:
      config = json.load(f)
    config_edit(config)
    with open(os.path.join(out, 'config.json'), 'w') as f:
      json.dump(config, f)
  return out


@pytest.mark.parametrize('scan', [True, False])
@pytest.mark.parametrize('path', [HF_DIR, BV_NPZ], ids=['hf', 'big_vision'])
def test_parity_with_siglip_reference(path, scan):
  params = load_vit(path, cfg(scan))
  out = forward(params, scan)
  assert out.shape == REF['last_hidden_state'].shape == (3, 16, 32)
  assert_f32_close(out, REF['last_hidden_state'], VIT_CHAIN)


def test_both_formats_give_identical_trees():
  a, b = flatten(load_vit_hf(HF_DIR, cfg())), flatten(load_vit_big_vision(BV_NPZ, cfg()))
  assert set(a) == set(b)
  for k in a:
    np.testing.assert_allclose(a[k], b[k], atol=1e-7, err_msg=k)
    assert a[k].dtype == np.float32


def test_layer_instance_accepted():
  layer = base_layer.instantiate(cfg(scan=False))
  params = load_vit(BV_NPZ, layer)
  assert 'x_layers_1' in params['transformer']


def test_big_vision_prefixes_scan_layout_and_pre_linen_names(tmp_path):
  arrays = bv_arrays()
  # Two-tower checkpoint: 'params/img/...' plus a text tower that must be ignored.
  two_tower = {f'params/img/{k}': v for k, v in arrays.items()}
  two_tower['params/txt/Embed_0/embedding'] = np.zeros((7, 4), np.float32)
  two_tower['params/t'] = np.zeros((1,), np.float32)
  out = forward(load_vit(write_npz(tmp_path, two_tower, 'two.npz'), cfg()))
  assert_f32_close(out, REF['last_hidden_state'], VIT_CHAIN)
  # Scanned big_vision checkpoint: Transformer/encoderblock/... with a [depth] axis.
  scanned = {k: v for k, v in arrays.items() if 'encoderblock_' not in k}
  for k in [k for k in arrays if 'encoderblock_0/' in k]:
    scanned[k.replace('encoderblock_0', 'encoderblock')] = np.stack(
      [arrays[k], arrays[k.replace('encoderblock_0', 'encoderblock_1')]]
    )
  scanned_npz = write_npz(tmp_path, {f'params/{k}': v for k, v in scanned.items()})
  out = forward(load_vit(scanned_npz, cfg()))
  assert_f32_close(out, REF['last_hidden_state'], VIT_CHAIN)
  # The sizes are read through the same naming: every layout gives the fixture's config.
  for path in (scanned_npz, write_npz(tmp_path, two_tower, 'two.npz')):
    assert dims(vit_config_from_checkpoint(path)) == dims(cfg()), path
  # Original ViT release naming (pre-linen module numbers, posemb in Transformer).
  rename = {
    'MultiHeadDotProductAttention_0': 'MultiHeadDotProductAttention_1',
    'LayerNorm_1': 'LayerNorm_2',
    'MlpBlock_0': 'MlpBlock_3',
  }
  old = {}
  for k, v in arrays.items():
    for a, b in rename.items():
      k = k.replace(f'/{a}/', f'/{b}/')
    old['Transformer/posembed_input/pos_embedding' if k == 'pos_embedding' else k] = v
  old_npz = write_npz(tmp_path, old, 'old.npz')
  out = forward(load_vit(old_npz, cfg(scan=False)), scan=False)
  assert_f32_close(out, REF['last_hidden_state'], VIT_CHAIN)
  assert dims(vit_config_from_checkpoint(old_npz)) == dims(cfg())


def test_hf_tower_inside_a_larger_model(tmp_path):
  def edit(t):
    for k in list(t):
      t['vision_tower.' + k] = t.pop(k)
    t['language_model.lm_head.weight'] = np.zeros((3, 2), np.float32)

  path = copy_hf(tmp_path, edit, lambda c: c.update(vision_config=dict(c), model_type='x'))
  out = forward(load_vit(path, cfg()))
  assert_f32_close(out, REF['last_hidden_state'], VIT_CHAIN)


@pytest.mark.parametrize(
  'key, arr, match',
  [
    ('Transformer/encoderblock_1/MlpBlock_0/Dense_0/bias', np.zeros(65), 'Dense_0/bias'),
    ('Transformer/encoderblock_0/LayerNorm_0/scale', None, 'encoderblock_0/LayerNorm_0/scale'),
    ('Transformer/encoderblock_2/LayerNorm_0/scale', np.zeros(32), 'encoderblock_2'),
    ('Transformer/extra_tensor', np.zeros(3), 'Transformer/extra_tensor'),
  ],
  ids=['wrong_shape', 'missing', 'extra_layer', 'unknown'],
)
def test_corrupt_big_vision_checkpoint_names_tensor(tmp_path, key, arr, match):
  arrays = bv_arrays()
  if arr is None:
    del arrays[key]
  else:
    arrays[key] = arr.astype(np.float32)
  with pytest.raises(CheckpointMismatchError, match=match):
    load_vit(write_npz(tmp_path, arrays), cfg())


@pytest.mark.parametrize(
  'key, arr, match',
  [
    ('vision_model.encoder.layers.1.mlp.fc2.weight', np.zeros((32, 60)), 'fc2.weight'),
    ('vision_model.post_layernorm.bias', None, 'post_layernorm.bias'),
    ('vision_model.encoder.layers.0.self_attn.extra.weight', np.zeros(3), 'self_attn.extra'),
  ],
  ids=['wrong_shape', 'missing', 'extra'],
)
def test_corrupt_hf_checkpoint_names_tensor(tmp_path, key, arr, match):
  def edit(t):
    if arr is None:
      del t[key]
    else:
      t[key] = arr.astype(np.float32)

  with pytest.raises(CheckpointMismatchError, match=match):
    load_vit(copy_hf(tmp_path, edit), cfg())


def test_hf_incompatible_config_and_missing_torch(tmp_path, monkeypatch):
  path = copy_hf(tmp_path, config_edit=lambda c: c.update(hidden_act='gelu'))
  with pytest.raises(CheckpointMismatchError, match='hidden_act'):
    load_vit(path, cfg())
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  shutil.copy(os.path.join(HF_DIR, 'config.json'), bin_dir / 'config.json')
  (bin_dir / 'pytorch_model.bin').write_bytes(b'not really')
  monkeypatch.setitem(sys.modules, 'torch', None)  # import torch -> ImportError
  with pytest.raises(ImportError, match='PyTorch'):
    load_vit(str(bin_dir), cfg())
  with pytest.raises(FileFormatError, match='not a ViT checkpoint'):
    load_vit(VIT_REF + '.txt', cfg())


def test_wrong_resolution_without_image_size_is_an_error():
  with pytest.raises(CheckpointMismatchError, match='pos_embedding.*image_size='):
    load_vit(BV_NPZ, cfg(image_size=42))


def test_hf_bfloat16_safetensors(tmp_path):
  ml_dtypes = pytest.importorskip('ml_dtypes')
  tensors = load_file(os.path.join(HF_DIR, 'model.safetensors'))
  out = copy_hf(tmp_path)
  # safetensors.numpy cannot write bfloat16: write the (simple) format by hand.
  header, blobs, offset = {}, [], 0
  for name, arr in tensors.items():
    blob = arr.astype(ml_dtypes.bfloat16).tobytes()
    header[name] = {
      'dtype': 'BF16',
      'shape': list(arr.shape),
      'data_offsets': [offset, offset + len(blob)],
    }
    blobs.append(blob)
    offset += len(blob)
  head = json.dumps(header).encode()
  with open(os.path.join(out, 'model.safetensors'), 'wb') as f:
    f.write(len(head).to_bytes(8, 'little') + head + b''.join(blobs))
  got = load_vit(out, cfg(scan=False))
  want = tensors['vision_model.post_layernorm.weight'].astype(ml_dtypes.bfloat16).astype(np.float32)
  np.testing.assert_array_equal(got['encoder_norm']['scale'], want)
  assert got['encoder_norm']['scale'].dtype == np.float32


@pytest.mark.parametrize('path', [HF_DIR, BV_NPZ], ids=['hf', 'big_vision'])
def test_image_size_resamples_posemb(path):
  base = load_vit(path, cfg())
  hi = load_vit(path, cfg(), image_size=42)  # 4x4 -> 6x6 grid
  assert hi['pos_embedding'].shape == (1, 36, 32)
  np.testing.assert_allclose(
    hi['pos_embedding'], resample_posemb(base['pos_embedding'], (6, 6)), atol=1e-7
  )
  for k in ('patch_embedding', 'transformer', 'encoder_norm'):
    jax.tree_util.tree_map(np.testing.assert_array_equal, hi[k], base[k])
  images = np.random.default_rng(0).uniform(-1, 1, (1, 42, 42, 3)).astype(np.float32)
  out = forward(hi, image_size=42, images=images)
  assert out.shape == (1, 36, 32) and np.isfinite(out).all()
