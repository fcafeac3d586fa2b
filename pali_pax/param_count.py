"""Parameter counts per component, computed abstractly (jax.eval_shape, no allocation)."""

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
