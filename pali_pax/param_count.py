"""Parameter counts per component, computed abstractly (jax.eval_shape, no allocation)."""

import numpy as np
from praxis import pax_fiddle

from pali_pax.core import batch as batch_lib
from pali_pax.core import params as params_lib

# Published sizes (PaLI paper, Table 1) used as the reference column.
PUBLISHED = {
  'vit': {'G/14': 1.8e9, 'e/14': 3.9e9},
  'mt5': {'large': 1.2e9, 'xxl': 13e9},
}


def component_counts(model_cfg: pax_fiddle.Config) -> dict[str, int]:
  """{'vit': n, 'fusion': n, 'mt5': n, 'mt5/<child>': n, 'total': n}."""
  batch = batch_lib.dummy_batch(model_cfg.vit_tpl.image_size)
  params = params_lib.abstract_params(model_cfg, batch, method='compute_predictions')
  out = {name: params_lib.count(sub) for name, sub in params.items()}
  for name, sub in params.get('mt5', {}).items():
    out[f'mt5/{name}'] = params_lib.count(sub)
  out['total'] = params_lib.count(params)
  return out


def describe(name: str) -> str:
  """Table of counts for a PaLI size ('3b') or a registered experiment name."""
  from pali_pax.fiddle_configs import pali, registry

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
  counts = component_counts(cfg)
  ref = {
    'vit': PUBLISHED['vit'].get(vit_variant),
    'mt5': PUBLISHED['mt5'].get(mt5_size),
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
