"""Malformed checkpoint and config files: one project error that names the file.

Each case writes a small damaged file in the real format (safetensors, JSON,
msgpack, zarr via tensorstore, .npz) next to otherwise valid ones, loads it
through the public entry points and checks the error's type and that the
message names the damaged file.
"""

import json
import os
import shutil

import numpy as np
import pytest
from flax import serialization
from safetensors import numpy as st_numpy

from pali_pax.convert import components, load_mt5, load_vit
from pali_pax.core.errors import CheckpointMismatchError, FileFormatError, PaliPaxError
from pali_pax.fiddle_configs.vit import vit_config
from tests.paths import MT5_HF, VIT_HF, VIT_NPZ

VIT_CFG = vit_config('tiny/7', image_size=28)


def copy_dir(src, tmp_path):
  return shutil.copytree(src, tmp_path / os.path.basename(src))


def rewrite(path, edit):
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(edit(data))
  return str(path)


def safetensors_header_length(data):
  return 8 + int.from_bytes(data[:8], 'little')


# ---------------------------------------------------------------- cases
# Each: tmp_path -> (load, damaged file); `load()` must raise naming the file.


def hf_weights(src, edit):
  def case(tmp_path):
    d = copy_dir(src, tmp_path)
    bad = rewrite(d / 'model.safetensors', edit)
    load = load_mt5 if src == MT5_HF else lambda p: load_vit(p, VIT_CFG)
    return lambda: load(str(d)), bad

  return case


def hf_config(src, text):
  def case(tmp_path):
    d = copy_dir(src, tmp_path)
    (d / 'config.json').write_text(text)
    if src == MT5_HF:
      return lambda: load_mt5(str(d)), str(d / 'config.json')
    return lambda: components.model_config(MT5_HF, str(d)), str(d / 'config.json')

  return case


def hf_config_field(src, key, value):
  def case(tmp_path):
    d = copy_dir(src, tmp_path)
    config = json.loads((d / 'config.json').read_text())
    config[key] = value
    (d / 'config.json').write_text(json.dumps(config))
    if src == MT5_HF:
      return lambda: load_mt5(str(d)), str(d / 'config.json')
    return lambda: load_vit(str(d), VIT_CFG), str(d / 'config.json')

  return case


def hf_index(text):
  def case(tmp_path):
    d = copy_dir(MT5_HF, tmp_path)
    os.remove(d / 'model.safetensors')
    (d / 'model.safetensors.index.json').write_text(text)
    return lambda: load_mt5(str(d)), str(d / 'model.safetensors.index.json')

  return case


def t5x(contents):
  def case(tmp_path):
    step = tmp_path / 'model' / 'checkpoint_10'
    step.mkdir(parents=True)
    (step / 'checkpoint').write_bytes(contents)
    return lambda: components.model_config(str(tmp_path / 'model')), str(step / 'checkpoint')

  return case


_VALID_T5X = serialization.msgpack_serialize({'version': 3, 'optimizer': {'target': {}}})


def t5x_deleted_array(tmp_path, mt5_t5x_dir):
  model = shutil.copytree(mt5_t5x_dir, tmp_path / 't5x')
  array = model / 'checkpoint_1000' / 'target.encoder.layers_0.mlp.wi_0.kernel'
  shutil.rmtree(array)
  return lambda: components.load_components(str(model)), str(array)


def npz(write):
  def case(tmp_path):
    path = tmp_path / 'vit.npz'
    write(path)
    return lambda: load_vit(str(path), VIT_CFG), str(path)

  return case


def npz_arrays(edit):
  def write(path):
    with np.load(VIT_NPZ) as f:
      arrays = {k: f[k] for k in f.files}
    edit(arrays)
    np.savez(path, **arrays)

  return write


def _truncate_half(data):
  return data[: len(data) // 2]


def _bare_npy(path):
  with open(path, 'wb') as f:
    np.save(f, np.zeros(3))


FORMAT_CASES = {
  # safetensors: header length past the end, bad JSON, truncated data, empty file.
  'mt5_safetensors_header_too_large': hf_weights(
    MT5_HF, lambda d: (10**12).to_bytes(8, 'little') + d[8:]
  ),
  'mt5_safetensors_bad_header_json': hf_weights(MT5_HF, lambda d: d[:8] + b'{x' + d[10:]),
  'mt5_safetensors_truncated': hf_weights(MT5_HF, lambda d: d[:-100]),
  'vit_safetensors_empty': hf_weights(VIT_HF, lambda d: b''),
  'vit_safetensors_only_header': hf_weights(VIT_HF, lambda d: d[: safetensors_header_length(d)]),
  # config.json: not JSON, not an object, a size of the wrong type / sign.
  'mt5_config_not_json': hf_config(MT5_HF, '{"d_model": 32,'),
  'mt5_config_a_list': hf_config(MT5_HF, '[1, 2]'),
  'vit_config_not_json': hf_config(VIT_HF, '\x00\x01garbage'),
  'mt5_config_string_size': hf_config_field(MT5_HF, 'd_model', 'thirty-two'),
  'mt5_config_missing_size': hf_config_field(MT5_HF, 'num_heads', None),
  'vit_config_negative_heads': hf_config_field(VIT_HF, 'num_attention_heads', -4),
  # Sharded-weights index: not JSON, no weight_map, a shard outside the directory.
  'index_not_json': hf_index('not json'),
  'index_without_weight_map': hf_index('{"metadata": {}}'),
  'index_escaping_directory': hf_index('{"weight_map": {"a": "../../etc/passwd"}}'),
  # T5X msgpack: trailing bytes (msgpack ExtraData), truncated, not a dict.
  't5x_extra_data': t5x(_VALID_T5X + b'\x00garbage'),
  't5x_truncated': t5x(_VALID_T5X[:7]),
  't5x_not_a_dict': t5x(serialization.msgpack_serialize([1, 2, 3])),
  't5x_random_bytes': t5x(bytes(range(200, 256)) * 4),
  # .npz: zip garbage, truncated zip, a bare .npy, pickled objects.
  'npz_zip_garbage': npz(lambda p: p.write_bytes(b'PK\x03\x04' + bytes(range(256)))),
  'npz_truncated': npz(lambda p: rewrite(shutil.copy(VIT_NPZ, p), _truncate_half)),
  'npz_is_a_bare_npy': npz(_bare_npy),
  'npz_pickled_object': npz(npz_arrays(lambda a: a.update(meta=np.array([{'a': 1}], object)))),
}

MISMATCH_CASES = {
  # Readable files whose content does not fit: named as checkpoint mismatches.
  'npz_wrong_keys': npz(
    npz_arrays(lambda a: a.update({'other/kernel': a.pop('embedding/kernel')}))
  ),
  'npz_text_tensor': npz(npz_arrays(lambda a: a.update({'embedding/bias': np.array(['x'] * 32)}))),
  'mt5_config_relu': hf_config_field(MT5_HF, 'feed_forward_proj', 'relu'),
}


@pytest.mark.parametrize('name', sorted(FORMAT_CASES))
def test_malformed_file_is_a_file_format_error_naming_it(tmp_path, name):
  load, bad = FORMAT_CASES[name](tmp_path)
  with pytest.raises(FileFormatError) as info:
    load()
  assert bad in str(info.value)


@pytest.mark.parametrize('name', sorted(MISMATCH_CASES))
def test_unfitting_file_is_a_mismatch_error_naming_it(tmp_path, name):
  load, bad = MISMATCH_CASES[name](tmp_path)
  with pytest.raises(CheckpointMismatchError) as info:
    load()
  assert bad in str(info.value)


def test_missing_tensorstore_array_names_it(tmp_path, mt5_t5x_dir):
  load, bad = t5x_deleted_array(tmp_path, mt5_t5x_dir)
  with pytest.raises(FileFormatError, match='tensorstore') as info:
    load()
  assert bad in str(info.value)


def test_project_errors_share_one_base():
  for error in (FileFormatError, CheckpointMismatchError):
    assert issubclass(error, PaliPaxError) and issubclass(error, ValueError)
  # The files the cases damage are valid as committed (so the damage is what fails).
  st_numpy.load_file(os.path.join(MT5_HF, 'model.safetensors'))
  assert components.model_config(MT5_HF, VIT_NPZ).vit_tpl.width == 32
