"""fiddle_configs.sharding: the mesh goes on the root only; `unsharded` removes it everywhere."""

import fiddle as fdl
import jax
import pytest
from fiddle import daglish
from praxis import base_layer

from pali_pax.core import batch as batch_lib
from pali_pax.core import params as params_lib
from pali_pax.fiddle_configs import pali, sharding


def _tiny():
  return pali.pali_config('tiny', image_size=16, vocab_size=64)


def _layer_configs(cfg):
  for value, path in daglish.iterate(cfg):
    if isinstance(value, fdl.Buildable) and isinstance(fdl.get_callable(value), type):
      if issubclass(fdl.get_callable(value), base_layer.BaseLayer):
        yield daglish.path_str(path), value


def test_shard_pali_puts_the_mesh_on_the_root_only():
  cfg = sharding.shard_pali(_tiny(), (1, 2, 4), (1, 2, 1))
  assert cfg.ici_mesh_shape == [1, 2, 4] and cfg.dcn_mesh_shape == [1, 2, 1]
  assert cfg.mesh_axis_names == list(sharding.MESH_AXIS_NAMES)
  # Sub-layers inherit the root's mesh when praxis builds them.
  below = [path for path, c in _layer_configs(cfg) if path and c.ici_mesh_shape is not None]
  assert below == []


@pytest.mark.parametrize(
  'ici, dcn, match',
  [((1, 8), None, 'ici_mesh_shape .* must have 3 axes'), (None, (1, 2, 1), 'needs ici')],
)
def test_bad_mesh_is_an_error(ici, dcn, match):
  with pytest.raises(ValueError, match=match):
    sharding.shard_pali(_tiny(), ici, dcn)


def test_unsharded_removes_every_mesh_and_keeps_the_input():
  cfg = sharding.shard_pali(_tiny(), [1, 2, 4], [1, 2, 1])
  cfg.mt5_tpl.ici_mesh_shape = [1, 2, 4]  # a mesh set lower in the graph goes too
  cfg.mt5_tpl.mesh_axis_names = list(sharding.MESH_AXIS_NAMES)
  plain = params_lib.unsharded(cfg)
  layers = dict(_layer_configs(plain))
  assert {'', '.vit_tpl', '.mt5_tpl', '.mt5_tpl.encoder_tpl.block_tpl'} <= set(layers)
  for path, c in layers.items():
    assert (c.ici_mesh_shape, c.dcn_mesh_shape, c.mesh_axis_names) == (None, None, None), path
  assert cfg.ici_mesh_shape == [1, 2, 4] and cfg.mt5_tpl.ici_mesh_shape == [1, 2, 4]
  # On this one device the copy traces to the parameters of the never-sharded model.
  # Traced directly (abstract_params would unshard it again): no mesh context is needed.
  batch = batch_lib.dummy_batch(16)
  layer = base_layer.instantiate(plain)
  with base_layer.JaxContext.new_context():
    got = jax.eval_shape(
      lambda: layer.init(jax.random.PRNGKey(0), batch, method=layer.compute_predictions)
    )
  shapes = jax.tree_util.tree_map(lambda x: x.shape, got[base_layer.PARAMS])
  want = params_lib.abstract_params(_tiny(), batch, method='compute_predictions')
  assert shapes == jax.tree_util.tree_map(lambda x: x.shape, want)
