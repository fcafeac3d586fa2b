"""`pali-pax params NAME`: parameter counts per component, computed abstractly (no allocation)."""

import argparse

import numpy as np

from pali_pax import param_count
from pali_pax.fiddle_configs import pali, registry


def describe(name: str) -> str:
  """Table of counts for a PaLI size ('3b') or a registered experiment name."""
  mesh = None
  if name.lower() in pali.PALI_SIZES:
    size = name.lower()
    cfg = pali.pali_config(size)
  else:
    exp = registry.get_experiment(name)()
    size = exp.MODEL
    cfg = exp.model_config()
    mesh = (exp.ICI_MESH_SHAPE, exp.DCN_MESH_SHAPE)
  vit_variant, mt5_size = pali.PALI_SIZES[size]
  counts = param_count.component_counts(cfg)
  ref = {
    'vit': param_count.PUBLISHED['vit'].get(vit_variant),
    'mt5': param_count.PUBLISHED['mt5'].get(mt5_size),
  }
  lines = [f'PaLI {size}: ViT {vit_variant} + mT5 {mt5_size}']
  if mesh:
    n_dev = int(np.prod(mesh[0]) * (np.prod(mesh[1]) if mesh[1] else 1))
    lines.append(f'mesh [replica, data, mdl]: ici {list(mesh[0])} dcn {mesh[1]} = {n_dev} devices')
  lines.append(f'{"component":<22}{"parameters":>16}{"published":>12}{"diff":>8}')
  for key, n in counts.items():
    pub = ref.get(key)
    extra = f'{pub / 1e9:>11.1f}B{100 * (n - pub) / pub:>+7.1f}%' if pub else ''
    lines.append(f'{key:<22}{n:>16,}{extra}')
  return '\n'.join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The argument of `pali-pax params`."""
  p.add_argument('name', help='an experiment name or a PaLI size (tiny, 3b, 15b, 17b)')


def run(args: argparse.Namespace) -> int:
  """Prints `describe(NAME)`."""
  print(describe(args.name))
  return 0
