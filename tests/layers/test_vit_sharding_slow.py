"""ViT-tiny sharded over 8 emulated CPU devices computes what the unsharded one computes.

Slow (~30 s: a child process with 8 devices), as the mT5 stack's sharded forward
(test_mt5_sharding_slow); the default suite keeps test_vit's partition-spec checks.
"""

import textwrap

import pytest

from tests.devices import run_on_devices

pytestmark = pytest.mark.slow

SHARDING_SCRIPT = textwrap.dedent(
  """
    import os
    os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=8'
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from praxis import base_layer
    from pali_pax.fiddle_configs import sharding
    from pali_pax.fiddle_configs.vit import vit_config
    assert jax.device_count() == 8
    images = jax.random.uniform(jax.random.PRNGKey(1), (4, 28, 28, 3), minval=-1, maxval=1)
    for scan in (True, False):
      ref_layer = base_layer.instantiate(vit_config('tiny/7', image_size=28, scan=scan))
      params = ref_layer.init(jax.random.PRNGKey(0), images)['params']
      ref = np.asarray(jax.jit(lambda p, x: ref_layer.apply({'params': p}, x))(params, images))
      for shape in ([1, 2, 4], [1, 4, 2]) if scan else ([1, 4, 2],):
        cfg = sharding.shard_vit(vit_config('tiny/7', image_size=28, scan=scan), shape)
        layer = base_layer.instantiate(cfg)
        axes = tuple(cfg.mesh_axis_names)
        mesh = Mesh(np.array(jax.devices()).reshape(shape), axes)
        specs = base_layer.var_partition_specs(
            layer.abstract_init_with_metadata(images), mesh_shape=shape, device_axis_names=axes)
        p_shard = jax.tree_util.tree_map(lambda s: NamedSharding(mesh, s), specs['params'])
        x_shard = NamedSharding(mesh, P(sharding.BATCH_AXES))
        with mesh:
          fn = jax.jit(lambda p, x: layer.apply({'params': p}, x),
                       in_shardings=(p_shard, x_shard))
          out = fn(jax.device_put(params, p_shard), jax.device_put(images, x_shard))
          q = jax.device_put(params, p_shard)['transformer']
          q = (q['repeat']['sub']['x_layers_0'] if scan else q['x_layers_0'])
          w = q['self_attention']['query']['w']
          assert w.addressable_shards[0].data.size < w.size, w.sharding
        err = float(np.abs(np.asarray(out) - ref).max())
        print('scan', scan, 'mesh', shape, 'max err', err)
        assert err < 1e-5, err
    print('SHARDING OK')
    """
)


def test_sharded_forward_matches_unsharded():
  assert 'SHARDING OK' in run_on_devices(SHARDING_SCRIPT)
