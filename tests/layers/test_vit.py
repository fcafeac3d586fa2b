"""VisionTransformer layer: position embeddings, input checks, scan, sizes, SPMD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from praxis import base_layer, pax_fiddle

from pali_pax.core import params as params_lib
from pali_pax.fiddle_configs import sharding
from pali_pax.fiddle_configs.vit import VIT_VARIANTS, parse_variant, vit_config
from pali_pax.layers import vit
from tests.numerics import assert_f32_close, vit_chain


def tiny_cfg(**kw):
  args = dict(name='vit', image_size=28, patch_size=7, width=32, depth=2, mlp_dim=64, num_heads=4)
  args.update(kw)
  return pax_fiddle.Config(vit.VisionTransformer, **args)


def test_sincos2d_matches_hand_computed():
  # 2x3 grid, width 8: omega = [1, 1/temperature] (quarter = 2).
  pe = vit.posemb_sincos_2d(2, 3, 8, temperature=100.0)
  assert pe.shape == (1, 6, 8) and pe.dtype == np.float32
  omega = np.array([1.0, 0.01])
  for token, (y, x) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]):
    want = np.concatenate(
      [np.sin(x * omega), np.cos(x * omega), np.sin(y * omega), np.cos(y * omega)]
    )
    np.testing.assert_allclose(pe[0, token], want, atol=1e-7)
  with pytest.raises(ValueError, match='width'):
    vit.posemb_sincos_2d(2, 2, 6)


def test_sincos2d_layer_has_no_posemb_param_and_adds_it():
  layer = base_layer.instantiate(tiny_cfg(posemb='sincos2d', depth=1))
  images = jnp.zeros((1, 28, 28, 3))
  params = layer.init(jax.random.PRNGKey(0), images)['params']
  assert 'pos_embedding' not in params
  # All-zero weights make each block the identity and the patch embedding zero,
  # so the output is encoder_norm(posemb) with unit scale.
  params = jax.tree_util.tree_map(np.zeros_like, params)
  params['encoder_norm']['scale'] = np.ones(32, np.float32)
  out = np.asarray(layer.apply({'params': params}, images))[0]
  pe = vit.posemb_sincos_2d(4, 4, 32)[0].astype(np.float64)
  pe = (pe - pe.mean(-1, keepdims=True)) / np.sqrt(pe.var(-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(out, pe, atol=1e-4)


def test_resample_posemb_identity_ramp_and_shape():
  rng = np.random.default_rng(0)
  pe = rng.normal(size=(1, 16, 5)).astype(np.float32)
  np.testing.assert_array_equal(vit.resample_posemb(pe, (4, 4)), pe)
  # A linear ramp over the grid stays a linear ramp (corner-aligned bilinear).
  yy, xx = np.meshgrid(np.arange(4.0), np.arange(4.0), indexing='ij')
  ramp = np.stack([2 * yy + 3 * xx + 1, yy - xx], -1).reshape(1, 16, 2)
  out = vit.resample_posemb(ramp, (7, 10))
  assert out.shape == (1, 70, 2)
  ny, nx = np.meshgrid(np.linspace(0, 3, 7), np.linspace(0, 3, 10), indexing='ij')
  want = np.stack([2 * ny + 3 * nx + 1, ny - nx], -1).reshape(1, 70, 2)
  np.testing.assert_allclose(out, want, atol=1e-5)
  # 2x2 -> 3x3 by hand: corners kept, edge midpoints and centre are means.
  a, b, c, d = 1.0, 2.0, 4.0, 8.0
  got = vit.resample_posemb(np.array([a, b, c, d]).reshape(1, 4, 1), (3, 3))[0, :, 0]
  mid = [a, (a + b) / 2, b, (a + c) / 2, (a + b + c + d) / 4, (b + d) / 2, c, (c + d) / 2, d]
  np.testing.assert_array_equal(got, np.float32(mid))
  # PaLI: 224 -> 588 at patch 14 = 16x16 -> 42x42.
  assert vit.resample_posemb(np.zeros((1, 256, 3)), (42, 42)).shape == (1, 1764, 3)
  with pytest.raises(ValueError, match='square'):
    vit.resample_posemb(np.zeros((1, 15, 3)), (4, 4))


def interp_reference(grid, new_grid):
  """Corner-aligned bilinear resampling as two passes of np.interp (big_vision's mapping)."""
  (r, c, _), (nr, nc) = grid.shape, new_grid
  ys, xs = np.linspace(0, r - 1, nr), np.linspace(0, c - 1, nc)
  grid = np.apply_along_axis(lambda v: np.interp(ys, np.arange(r), v), 0, grid)
  return np.apply_along_axis(lambda v: np.interp(xs, np.arange(c), v), 1, grid)


@pytest.mark.parametrize(
  'old, new',
  [((5, 5), (8, 8)), ((16, 16), (42, 42)), ((4, 4), (3, 3)), ((2, 7), (9, 3)), ((3, 3), (1, 1))],
)
def test_resample_posemb_matches_independent_bilinear(old, new):
  pe = np.random.default_rng(1).normal(size=(1, old[0] * old[1], 3))
  out = vit.resample_posemb(pe, new, old_grid=old)
  want = interp_reference(pe.reshape(*old, 3), new)
  # float64 arithmetic, then one rounding to float32: half an ulp of the largest magnitude.
  atol = np.finfo(np.float32).eps * np.abs(pe).max()
  np.testing.assert_allclose(out.reshape(*new, 3), want, rtol=0, atol=atol)


@pytest.mark.parametrize(
  'shape, match',
  [
    ((28, 28, 3), 'rank'),
    ((1, 28, 28, 1), 'channels'),
    ((1, 3, 28, 28), 'channels'),
    ((1, 30, 28, 3), 'divisible'),
    ((1, 35, 35, 3), 'position embedding'),
  ],
)
def test_bad_images_raise(shape, match):
  layer = base_layer.instantiate(tiny_cfg(depth=1))
  with pytest.raises(ValueError, match=match):
    layer.init(jax.random.PRNGKey(0), jnp.zeros(shape))


@pytest.mark.parametrize(
  'kw, match',
  [
    (dict(image_size=30), 'not divisible by patch_size'),
    (dict(width=30), 'not divisible by num_heads'),
    (dict(posemb='rope'), 'posemb'),
  ],
)
def test_bad_hparams_raise(kw, match):
  layer = base_layer.instantiate(tiny_cfg(depth=1, **kw))
  with pytest.raises(ValueError, match=match):
    layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 3)))


def test_scan_equals_python_loop():
  images = jax.random.uniform(jax.random.PRNGKey(1), (2, 28, 28, 3), minval=-1, maxval=1)
  loop = base_layer.instantiate(tiny_cfg(scan=False))
  scan = base_layer.instantiate(tiny_cfg(scan=True))
  params = loop.init(jax.random.PRNGKey(0), images)['params']
  y_loop = loop.apply({'params': params}, images)
  stacked = dict(params)
  layers = [params['transformer'][f'x_layers_{i}'] for i in range(2)]
  stacked['transformer'] = {
    'repeat': {'sub': {'x_layers_0': jax.tree_util.tree_map(lambda *a: jnp.stack(a), *layers)}}
  }
  y_scan = scan.apply({'params': stacked}, images)
  assert y_loop.shape == (2, 16, 32)
  chain = vit_chain(width=32, depth=2, mlp=64, heads=4, patch=7, tokens=16)
  assert_f32_close(y_scan, y_loop, chain)


def test_variant_parsing():
  size, patch = parse_variant('G/14')
  assert (size.width, size.depth, size.mlp_dim, size.num_heads, patch) == (1664, 48, 8192, 16, 14)
  assert parse_variant('B/16')[1] == 16 and parse_variant('e')[1] == 14
  for name in ('S', 'B', 'L', 'H', 'g', 'G', 'e', 'tiny'):
    assert name in VIT_VARIANTS
  with pytest.raises(ValueError, match='valid names: .*G'):
    vit_config('X/14')
  with pytest.raises(ValueError, match='patch'):
    vit_config('G/x')


@pytest.mark.parametrize('variant, billions', [('G/14', 1.8), ('e/14', 3.9)])
def test_param_counts(variant, billions):
  images = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
  n = params_lib.count(params_lib.abstract_params(vit_config(variant, image_size=224), images))
  assert abs(n / (billions * 1e9) - 1) < 0.03, n


def test_sharding_annotations_under_a_parent_mesh():
  cfg = vit_config('tiny/7', image_size=28)  # scan=True
  cfg.ici_mesh_shape, cfg.mesh_axis_names = [1, 1, 1], list(sharding.MESH_AXIS_NAMES)
  sharding.shard_vit(cfg)  # the mesh is the parent's
  layer = base_layer.instantiate(cfg)
  specs = base_layer.var_partition_specs(
    layer.abstract_init_with_metadata(jnp.zeros((2, 28, 28, 3))),
    mesh_shape=[1, 1, 1],
    device_axis_names=list(sharding.MESH_AXIS_NAMES),
  )['params']
  block = specs['transformer']['repeat']['sub']['x_layers_0']
  assert tuple(block['self_attention']['query']['w']) == (None, None, 'mdl', None)
  assert tuple(block['self_attention']['post']['w']) == (None, None, 'mdl', None)
  assert tuple(block['ff_layer']['ffn_layer1']['linear']['w']) == (None, None, 'mdl')
  assert tuple(block['ff_layer']['ffn_layer2']['linear']['w']) == (None, 'mdl', None)
  assert layer.activation_split_dims_mapping.bld == [('replica', 'data'), None, None]
