"""mT5 converters: HF directory and T5X (msgpack + tensorstore) checkpoints."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorstore as ts
from flax import serialization
from safetensors import flax as st_flax
from safetensors import numpy as st_numpy

from pali_pax.convert import hf_files, mt5_common, mt5_hf
from pali_pax.convert import mt5 as convert_mt5
from pali_pax.core.errors import CheckpointMismatchError, FileFormatError
from pali_pax.core.tree import flatten
from pali_pax.fiddle_configs import mt5 as mt5_configs
from tests.paths import MT5_HF as HF_DIR

HEADS, DKV = 4, 8


@pytest.fixture(scope='module')
def cfg():
  return mt5_hf.mt5_config_from_hf(HF_DIR)


@pytest.fixture(scope='module')
def hf_tensors():
  return st_numpy.load_file(os.path.join(HF_DIR, 'model.safetensors'))


@pytest.fixture(scope='module')
def hf_params(cfg):
  return convert_mt5.load_mt5(HF_DIR, cfg, progress=False)


def write_hf(directory, tensors, config_updates=None):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(HF_DIR, 'config.json')) as f:
    config = json.load(f)
  config.update(config_updates or {})
  with open(os.path.join(directory, 'config.json'), 'w') as f:
    json.dump(config, f)
  st_numpy.save_file(dict(tensors), os.path.join(directory, 'model.safetensors'))
  return str(directory)


def hf_to_t5x(tensors):
  """HF names -> T5X names and layouts, written independently of the converter."""
  out = {
    'token_embedder/embedding': tensors['shared.weight'],
    'decoder/logits_dense/kernel': tensors['lm_head.weight'].T,
  }
  for stack, n_layers in (('encoder', 2), ('decoder', 2)):
    out[f'{stack}/relpos_bias/rel_embedding'] = tensors[
      f'{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight'
    ].T
    out[f'{stack}/{stack}_norm/scale'] = tensors[f'{stack}.final_layer_norm.weight']
    for i in range(n_layers):
      hf, t5x = f'{stack}.block.{i}.layer', f'{stack}/layers_{i}'
      attns = [('0.SelfAttention', 'attention' if stack == 'encoder' else 'self_attention')]
      norms = [
        ('0', 'pre_attention_layer_norm' if stack == 'encoder' else 'pre_self_attention_layer_norm')
      ]
      if stack == 'decoder':
        attns.append(('1.EncDecAttention', 'encoder_decoder_attention'))
        norms.append(('1', 'pre_cross_attention_layer_norm'))
      ff = '1' if stack == 'encoder' else '2'
      norms.append((ff, 'pre_mlp_layer_norm'))
      for hf_att, t5x_att in attns:
        for a, b in (('q', 'query'), ('k', 'key'), ('v', 'value'), ('o', 'out')):
          out[f'{t5x}/{t5x_att}/{b}/kernel'] = tensors[f'{hf}.{hf_att}.{a}.weight'].T
      for j, name in norms:
        out[f'{t5x}/{name}/scale'] = tensors[f'{hf}.{j}.layer_norm.weight']
      for w in ('wi_0', 'wi_1', 'wo'):
        out[f'{t5x}/mlp/{w}/kernel'] = tensors[f'{hf}.{ff}.DenseReluDense.{w}.weight'].T
  return out


def write_t5x(model_dir, target, step=1000):
  """A legacy T5X checkpoint: msgpack `checkpoint` + zarr arrays (1-D ones inline)."""
  ckpt_dir = os.path.join(model_dir, f'checkpoint_{step}')
  os.makedirs(ckpt_dir, exist_ok=True)
  nested = {}
  for name, array in target.items():
    array = np.asarray(array, np.float32)
    if array.ndim == 1:
      leaf = array
    else:
      rel = 'target.' + name.replace('/', '.')
      leaf = {
        'driver': 'zarr',
        'dtype': 'float32',
        'kvstore': {'driver': 'file', 'path': rel},
        'metadata': {
          'chunks': list(array.shape),
          'compressor': {'id': 'gzip', 'level': 1},
          'shape': list(array.shape),
        },
      }
      spec = {**leaf, 'kvstore': {'driver': 'file', 'path': os.path.join(ckpt_dir, rel)}}
      ts.open(spec, create=True, open=True).result().write(array).result()
    node = nested
    *parents, last = name.split('/')
    for part in parents:
      node = node.setdefault(part, {})
    node[last] = leaf
  contents = {'version': 3, 'optimizer': {'target': nested, 'state': {'step': np.int64(step)}}}
  with open(os.path.join(ckpt_dir, 'checkpoint'), 'wb') as f:
    f.write(serialization.msgpack_serialize(contents))
  return str(model_dir)


# ------------------------------------------------------------------ HF


def test_hf_load_layout(cfg, hf_params, hf_tensors):
  expected = flatten(mt5_common.expected_params(cfg))
  got = flatten(hf_params)
  assert set(got) == set(expected)
  assert all(got[k].shape == expected[k].shape and got[k].dtype == np.float32 for k in got)
  q = hf_tensors['decoder.block.1.layer.1.EncDecAttention.q.weight']
  np.testing.assert_array_equal(
    got['decoder/x_layers_1/cross_attention/query/w'], q.T.reshape(32, HEADS, DKV)
  )
  o = hf_tensors['encoder.block.0.layer.0.SelfAttention.o.weight']
  np.testing.assert_array_equal(
    got['encoder/x_layers_0/self_attention/post/w'], o.reshape(32, HEADS, DKV)
  )
  np.testing.assert_array_equal(
    got['decoder/x_layers_0/ff/ffn_layer1_gate/linear/w'],
    hf_tensors['decoder.block.0.layer.2.DenseReluDense.wi_0.weight'].T,
  )
  np.testing.assert_array_equal(got['softmax/logits_ffn/linear/w'], hf_tensors['lm_head.weight'].T)


def test_hf_missing_extra_misshaped_tensors(cfg, hf_tensors, tmp_path):
  missing = {
    k: v for k, v in hf_tensors.items() if k != 'encoder.block.1.layer.1.DenseReluDense.wo.weight'
  }
  with pytest.raises(
    CheckpointMismatchError, match=r'missing tensor for encoder/x_layers_1/ff/ffn_layer2/linear/w'
  ):
    convert_mt5.load_mt5(write_hf(tmp_path / 'missing', missing), cfg, progress=False)
  extra = {**hf_tensors, 'encoder.block.2.layer.0.layer_norm.weight': np.ones(32, np.float32)}
  with pytest.raises(
    CheckpointMismatchError,
    match=r'unexpected tensor encoder\.block\.2\.layer\.0\.layer_norm\.weight',
  ):
    convert_mt5.load_mt5(write_hf(tmp_path / 'extra', extra), cfg, progress=False)
  bad = {**hf_tensors, 'decoder.final_layer_norm.weight': np.ones(31, np.float32)}
  with pytest.raises(
    CheckpointMismatchError, match=r'shape mismatch for decoder\.final_layer_norm\.weight'
  ):
    convert_mt5.load_mt5(write_hf(tmp_path / 'bad', bad), cfg, progress=False)


def test_hf_vocab_mismatch_names_both_sizes(hf_tensors, tmp_path):
  big = mt5_configs.mt5_config(
    'tiny', vocab_size=256, relative_attention_num_buckets=8, relative_attention_max_distance=16
  )
  with pytest.raises(
    CheckpointMismatchError, match=r'vocabulary size 128 .* config vocabulary size 256'
  ):
    convert_mt5.load_mt5(HF_DIR, big, progress=False)


def test_hf_tied_embedding_aliases(cfg, hf_params, hf_tensors, tmp_path):
  same = {**hf_tensors, 'encoder.embed_tokens.weight': hf_tensors['shared.weight']}
  params = convert_mt5.load_mt5(write_hf(tmp_path / 'same', same), cfg, progress=False)
  np.testing.assert_array_equal(params['token_emb']['emb_var'], hf_params['token_emb']['emb_var'])
  differ = {**hf_tensors, 'decoder.embed_tokens.weight': hf_tensors['shared.weight'] + 1}
  with pytest.raises(CheckpointMismatchError, match='decoder.embed_tokens.weight differs'):
    convert_mt5.load_mt5(write_hf(tmp_path / 'differ', differ), cfg, progress=False)


def test_hf_pytorch_bin_without_torch_is_a_clear_error(cfg, tmp_path, monkeypatch):
  directory = tmp_path / 'bin'
  directory.mkdir()
  shutil.copy(os.path.join(HF_DIR, 'config.json'), directory / 'config.json')
  (directory / 'pytorch_model.bin').write_bytes(b'not really')
  monkeypatch.setattr(hf_files, 'torch_available', lambda: False)
  with pytest.raises(
    ImportError, match=r'pytorch_model\.bin: .*convert the checkpoint to safetensors'
  ):
    convert_mt5.load_mt5(str(directory), cfg, progress=False)


def write_sharded_hf(directory, tensors, weights, save):
  """config.json + `tensors` in two shards of `weights` (e.g. model-00001-of-00002.safetensors)
  and its `<weights>.index.json`, as save_pretrained shards a large model."""
  os.makedirs(directory, exist_ok=True)
  shutil.copy(os.path.join(HF_DIR, 'config.json'), os.path.join(directory, 'config.json'))
  stem, ext = os.path.splitext(weights)
  names = sorted(tensors)
  weight_map = {}
  for i, part in enumerate((names[::2], names[1::2]), 1):
    shard = f'{stem}-{i:05d}-of-00002{ext}'
    save({k: tensors[k] for k in part}, os.path.join(directory, shard))
    weight_map.update(dict.fromkeys(part, shard))
  with open(os.path.join(directory, weights + '.index.json'), 'w') as f:
    json.dump({'metadata': {}, 'weight_map': weight_map}, f)
  return str(directory)


def assert_same_params(got, want):
  got, want = flatten(got), flatten(want)
  assert set(got) == set(want)
  for key in want:
    assert got[key].dtype == np.float32, key
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_hf_sharded_bfloat16_safetensors(cfg, hf_tensors, tmp_path):
  ml_dtypes = pytest.importorskip('ml_dtypes')
  bf16 = {k: v.astype(ml_dtypes.bfloat16) for k, v in hf_tensors.items()}
  # safetensors.numpy cannot write bfloat16; the flax writer can.
  sharded = write_sharded_hf(tmp_path / 'bf16', bf16, 'model.safetensors', st_flax.save_file)
  rounded = {k: v.astype(np.float32) for k, v in bf16.items()}
  want = convert_mt5.load_mt5(write_hf(tmp_path / 'f32', rounded), cfg, progress=False)
  assert_same_params(convert_mt5.load_mt5(sharded, cfg, progress=False), want)


@pytest.mark.parametrize('sharded', [False, True], ids=['single', 'sharded'])
def test_hf_pytorch_bin(cfg, hf_params, hf_tensors, tmp_path, sharded):
  torch = pytest.importorskip('torch')

  def save(tensors, file):
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}, file)

  if sharded:
    directory = write_sharded_hf(tmp_path / 'bin', hf_tensors, 'pytorch_model.bin', save)
  else:
    directory = tmp_path / 'bin'
    directory.mkdir()
    shutil.copy(os.path.join(HF_DIR, 'config.json'), directory / 'config.json')
    save(hf_tensors, directory / 'pytorch_model.bin')
  assert_same_params(convert_mt5.load_mt5(str(directory), cfg, progress=False), hf_params)


def test_hf_config_reading(tmp_path, hf_tensors):
  cfg = mt5_hf.mt5_config_from_hf(HF_DIR)
  assert (cfg.vocab_size, cfg.model_dims, cfg.num_heads, cfg.dim_per_head, cfg.hidden_dims) == (
    128,
    32,
    4,
    8,
    48,
  )
  assert (cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance) == (8, 16)
  relu = write_hf(tmp_path / 'relu', hf_tensors, {'feed_forward_proj': 'relu'})
  with pytest.raises(CheckpointMismatchError, match='gated-gelu'):
    mt5_hf.mt5_config_from_hf(relu)


def test_unknown_format(tmp_path, cfg):
  with pytest.raises(FileFormatError, match='neither a Hugging Face model directory'):
    convert_mt5.load_mt5(str(tmp_path), cfg)


# ------------------------------------------------------------------ T5X


def test_t5x_load_equals_hf_load(cfg, hf_params, hf_tensors, tmp_path):
  model_dir = write_t5x(tmp_path / 'model', hf_to_t5x(hf_tensors), step=500)
  write_t5x(tmp_path / 'model', hf_to_t5x(hf_tensors), step=1000)
  assert convert_mt5.detect_format(model_dir) == 't5x'
  for path in (
    model_dir,
    os.path.join(model_dir, 'checkpoint_1000'),
    os.path.join(model_dir, 'checkpoint_1000', 'checkpoint'),
  ):
    params = convert_mt5.load_mt5(path, cfg, progress=False)
    got, want = flatten(params), flatten(hf_params)
    assert set(got) == set(want)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_t5x_errors(cfg, hf_tensors, tmp_path):
  target = hf_to_t5x(hf_tensors)
  missing = {
    k: v for k, v in target.items() if k != 'decoder/layers_1/encoder_decoder_attention/key/kernel'
  }
  with pytest.raises(
    CheckpointMismatchError, match='missing tensor for decoder/x_layers_1/cross_attention/key/w'
  ):
    convert_mt5.load_mt5(write_t5x(tmp_path / 'missing', missing), cfg, progress=False)
  extra = {**target, 'decoder/layers_1/extra_layer_norm/scale': np.ones(32, np.float32)}
  with pytest.raises(
    CheckpointMismatchError, match='unexpected tensor decoder/layers_1/extra_layer_norm/scale'
  ):
    convert_mt5.load_mt5(write_t5x(tmp_path / 'extra', extra), cfg, progress=False)
  bad = {**target, 'encoder/relpos_bias/rel_embedding': np.zeros((HEADS, 9), np.float32)}
  with pytest.raises(
    CheckpointMismatchError, match='shape mismatch for encoder/relpos_bias/rel_embedding'
  ):
    convert_mt5.load_mt5(write_t5x(tmp_path / 'bad', bad), cfg, progress=False)
  small = mt5_configs.mt5_config(
    'tiny', vocab_size=100, relative_attention_num_buckets=8, relative_attention_max_distance=16
  )
  with pytest.raises(
    CheckpointMismatchError, match=r'vocabulary size 128 .* config vocabulary size 100'
  ):
    convert_mt5.load_mt5(write_t5x(tmp_path / 'vocab', target), small, progress=False)
  with pytest.raises(ValueError, match='pass cfg'):
    convert_mt5.load_mt5(str(tmp_path / 'vocab'), None)
