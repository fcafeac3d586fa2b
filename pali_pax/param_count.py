"""Parameter counts per component, computed abstractly (jax.eval_shape, no allocation)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from praxis import base_layer, pax_fiddle, py_utils

from pali_pax.fiddle_configs import sharding

NestedMap = py_utils.NestedMap

# Published sizes (PaLI paper, Table 1) used as the reference column.
PUBLISHED = {
  'vit': {'G/14': 1.8e9, 'e/14': 3.9e9},
  'mt5': {'large': 1.2e9, 'xxl': 13e9},
}


def dummy_batch(
  image_size: int, batch: int = 1, input_len: int = 8, target_len: int = 8
) -> NestedMap:
  """A batch in the model's input format (docs/CONTRACTS.md), all zeros/ones."""
  ones = jnp.ones((batch, target_len), jnp.int32)
  return NestedMap(
    image=jnp.zeros((batch, image_size, image_size, 3), jnp.float32),
    has_image=jnp.ones((batch,), jnp.float32),
    encoder_input_tokens=jnp.ones((batch, input_len), jnp.int32),
    decoder_input_tokens=ones,
    decoder_target_tokens=ones,
    decoder_loss_weights=jnp.ones((batch, target_len), jnp.float32),
  )


def abstract_params(model_cfg: pax_fiddle.Config) -> dict:
  """Shapes of the model's `params` collection, without allocating them."""
  # Counting needs no mesh; dropping it lets a pod-scale config trace on 1 CPU.
  model_cfg = sharding.unsharded(model_cfg)
  layer = base_layer.instantiate(model_cfg)
  batch = dummy_batch(model_cfg.vit_tpl.image_size)
  shapes = jax.eval_shape(
    lambda: layer.init({'params': jax.random.PRNGKey(0)}, batch, method=layer.compute_predictions)
  )
  return shapes['params']


def count(tree: dict) -> int:
  return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def component_counts(model_cfg: pax_fiddle.Config) -> dict[str, int]:
  """{'vit': n, 'fusion': n, 'mt5': n, 'mt5/<child>': n, 'total': n}."""
  params = abstract_params(model_cfg)
  out = {name: count(sub) for name, sub in params.items()}
  for name, sub in params.get('mt5', {}).items():
    out[f'mt5/{name}'] = count(sub)
  out['total'] = count(params)
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
