"""Seeded, bounded fuzz of the checkpoint converters (shared parts: tests/fuzzing.py).

converters   90 mutated HF mT5 / SigLIP / big_vision files
"""

import json
import shutil

import numpy as np
import pytest

from pali_pax.convert import components, load_vit
from tests import fuzzing, paths


def _converter_case(i, rng, tmp_path):
  """(load function, path the error must name) for one mutated checkpoint."""
  kind = ['mt5_config', 'mt5_weights', 'siglip_config', 'siglip_weights', 'bv_npz'][i % 5]
  folder = tmp_path / f'c{i:03d}'
  if kind.startswith('mt5'):
    shutil.copytree(paths.MT5_HF, folder)
  elif kind.startswith('siglip'):
    shutil.copytree(paths.VIT_HF, folder)
  else:
    folder.mkdir()
    shutil.copy(paths.VIT_NPZ, folder / 'vit.npz')
  target = (
    folder
    / {'config': 'config.json', 'weights': 'model.safetensors', 'npz': 'vit.npz'}[
      kind.split('_')[-1]
    ]
  )
  data = target.read_bytes()
  if kind.endswith('config') and rng.random() < 0.6:
    data = fuzzing.serialise('config.json', fuzzing.mutate_tree(json.loads(data), rng))
  elif kind.endswith('weights') and rng.random() < 0.3:
    data = int(rng.integers(2**40, 2**62)).to_bytes(8, 'little') + data[8:]  # header length
  else:
    data = fuzzing.mutate_bytes(data, rng)
  target.write_bytes(data)
  if kind.startswith('mt5'):
    return lambda: components.load_components(mt5=str(folder)), [str(folder)]
  vit = str(folder) if kind.startswith('siglip') else str(target)

  def load():
    cfg = components.model_config(paths.MT5_HF, vit)
    return load_vit(vit, cfg.vit_tpl)

  return load, [vit]


@pytest.mark.parametrize(
  'i',
  range(90),
)
def test_fuzz_converters(i, tmp_path):
  rng = np.random.default_rng([fuzzing.SEED + 4, i])
  load, names = _converter_case(i, rng, tmp_path)
  failures = []
  try:
    load()
  except Exception as e:  # noqa: BLE001
    fuzzing.fails(failures, f'converters[{i}]', e, names)
  assert not failures, failures[0]
