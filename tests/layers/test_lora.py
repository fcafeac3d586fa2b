"""LoRA projection layers (`layers.lora`): exact base at B = 0, folding, path targets, sharding."""

import jax
import numpy as np
import pytest
from praxis import base_layer, pax_fiddle
from praxis.layers import attentions, linears

from pali_pax.layers import lora


def _init_apply(cfg, x, b_std=0.0):
  layer = base_layer.instantiate(cfg)
  with base_layer.JaxContext.new_context():
    params = layer.init(jax.random.PRNGKey(0), x)['params']
  if b_std and 'lora_b' in params:
    rng = np.random.default_rng(0)
    params = {**params, 'lora_b': rng.normal(0, b_std, params['lora_b'].shape).astype(np.float32)}
  with base_layer.JaxContext.new_context():
    return params, np.asarray(layer.apply({'params': params}, x))


CASES = {
  'linear': (
    lambda cls: pax_fiddle.Config(cls, name='lin', input_dims=16, output_dims=12),
    (3, 16),
  ),
  'qkv': (
    lambda cls: pax_fiddle.Config(
      cls, name='q', input_dim=16, num_heads=2, dim_per_head=6, use_bias=False
    ),
    (3, 16),
  ),
  'post': (
    lambda cls: pax_fiddle.Config(
      cls, name='post', input_dim=16, num_heads=2, dim_per_head=6, is_output_projection=True
    ),
    (3, 2, 6),
  ),
}
BASE = {'linear': linears.Linear, 'qkv': attentions.AttentionProjection}
BASE['post'] = attentions.AttentionProjection
LORA = {'linear': lora.LoraLinear, 'qkv': lora.LoraAttentionProjection}
LORA['post'] = lora.LoraAttentionProjection


@pytest.mark.parametrize('case', sorted(CASES))
def test_fresh_adapter_is_the_base_layer_and_folds_exactly(case):
  make, shape = CASES[case]
  x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
  cfg = make(LORA[case]).set(lora_rank=3, lora_alpha=6.0)
  params, out = _init_apply(cfg, x)
  assert params['lora_a'].shape[-1] == 3 and not np.any(params['lora_b'])
  base_params = {k: v for k, v in params.items() if not k.startswith('lora_')}
  _, base_out = _init_apply(make(BASE[case]), x)
  with base_layer.JaxContext.new_context():
    base = base_layer.instantiate(make(BASE[case]))
    np.testing.assert_array_equal(out, np.asarray(base.apply({'params': base_params}, x)))
  assert base_out.shape == out.shape
  # Trained (B != 0): the folded weight computes the same projection within float32 rounding.
  params, out = _init_apply(cfg, x, b_std=0.5)
  folded, n = lora.fold_params(params, 6.0)
  assert n == 1 and set(folded) == set(base_params)
  with base_layer.JaxContext.new_context():
    plain = np.asarray(base.apply({'params': folded}, x))
  assert np.max(np.abs(out - base_out)) > 0.1  # the adapter changes the output
  k = 16 + 3  # longest contraction (and the rank)
  np.testing.assert_allclose(plain, out, rtol=0, atol=4 * k * 2.0**-24 * np.max(np.abs(out)))


def test_targets_select_layers_by_path():
  make, shape = CASES['linear']
  x = np.ones(shape, np.float32)
  # A root layer's path is empty; the model-level paths: tests/fiddle_configs/test_lora_configs.py.
  on, _ = _init_apply(make(lora.LoraLinear).set(lora_rank=2, lora_targets=('^$',)), x)
  off, _ = _init_apply(make(lora.LoraLinear).set(lora_rank=2, lora_targets=('attention',)), x)
  assert 'lora_a' in on and set(off) == {'w'}


def test_adapters_are_sharded_like_their_base_weight():
  cfg = CASES['qkv'][0](lora.LoraAttentionProjection).set(
    lora_rank=2, ici_mesh_shape=[1, 1, 1], mesh_axis_names=['replica', 'data', 'mdl']
  )
  cfg.weight_split_dims_mapping.wt = ['data', 'mdl', None]
  layer = base_layer.instantiate(cfg)
  hp = layer.abstract_init_with_metadata(jax.ShapeDtypeStruct((3, 16), np.float32))['params']
  assert hp['lora_a'].tensor_split_dims_mapping == ['data', None]
  assert hp['lora_b'].tensor_split_dims_mapping == [None, 'mdl', None]
