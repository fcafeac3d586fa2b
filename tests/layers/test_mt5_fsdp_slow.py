"""Where `shard_mt5` puts the mT5 arrays on 8 emulated CPU devices, with and without fsdp.

The weights are created by praxis from the layer's own partition specs (jit of
`init` with those out_shardings), then each array's `.sharding` is compared
with the layout stated by axis meaning: heads N, feed-forward units F and the
vocabulary V over 'mdl'; with fsdp the model dimension D also over 'data';
everything else (head width H, position buckets, norm scales) replicated.
The sharded model must also compute what the unsharded one computes. Slow (~30 s: a
child process with 8 devices), beside test_mt5_sharding_slow's forward.
"""

import textwrap

import pytest

from tests.devices import run_on_devices

pytestmark = pytest.mark.slow

_SCRIPT = textwrap.dedent(
  """
    import os
    os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=8'
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from praxis import base_layer
    from pali_pax.fiddle_configs import mt5 as mt5_configs
    from pali_pax.fiddle_configs import sharding
    assert jax.device_count() == 8
    MESH = [1, 2, 4]  # replica, data, mdl
    # Distinct sizes, so an axis is known by its size: D 16, N 4, H 8, F 48, V 128, 8 buckets.
    D, N, F, V = 16, 4, 48, 128
    B, S, T = 8, 7, 5
    rng = np.random.default_rng(0)
    ids = rng.integers(2, V, (B, S)).astype(np.int32)
    pad = np.zeros((B, S), np.float32)
    dids = rng.integers(2, V, (B, T)).astype(np.int32)
    dpad = np.zeros((B, T), np.float32)
    inputs = (ids, pad, dids, dpad)

    def cfg():
      return mt5_configs.mt5_config('tiny', vocab_size=V, model_dims=D, hidden_dims=F,
                                    relative_attention_num_buckets=8,
                                    relative_attention_max_distance=16)

    def expected_shard_shape(shape, fsdp):
      if len(shape) == 1:
        return shape  # norm scales: replicated
      split = {N: 4, F: 4, V: 4, D: 2 if fsdp else 1}
      return tuple(n // split.get(n, 1) for n in shape)

    plain = base_layer.instantiate(cfg())
    params = plain.init(jax.random.PRNGKey(1), *inputs)['params']
    want = jax.jit(lambda p, *x: plain.apply({'params': p}, *x))(params, *inputs)
    mesh = Mesh(np.array(jax.devices()).reshape(MESH), sharding.MESH_AXIS_NAMES)
    for fsdp in (False, True):
      model = base_layer.instantiate(sharding.shard_mt5(cfg(), MESH, fsdp=fsdp))
      specs = base_layer.var_partition_specs(
        model.abstract_init_with_metadata(*inputs), mesh_shape=MESH,
        device_axis_names=list(sharding.MESH_AXIS_NAMES))['params']
      out_sh = jax.tree_util.tree_map(lambda s: NamedSharding(mesh, s), specs)
      with mesh:
        placed = jax.jit(lambda k: model.init(k, *inputs)['params'], out_shardings=out_sh)(
          jax.random.PRNGKey(1))
        leaves = jax.tree_util.tree_leaves_with_path(placed)
        assert len(leaves) == len(jax.tree_util.tree_leaves(params))
        for path, x in leaves:
          got = x.sharding.shard_shape(x.shape)
          assert got == expected_shard_shape(x.shape, fsdp), (jax.tree_util.keystr(path), got)
          assert len(x.addressable_shards) == 8
        batch = NamedSharding(mesh, P(sharding.BATCH_AXES, None))
        p = jax.device_put(params, out_sh)
        logits = jax.jit(lambda p, *x: model.apply({'params': p}, *x))(
          p, *[jax.device_put(x, batch) for x in inputs])
      # Logits [B, T, V]: batch over replica x data, vocabulary over mdl.
      assert logits.sharding.shard_shape(logits.shape) == (B // 2, T, V // 4), logits.sharding
      scale = float(np.abs(np.asarray(want)).max())
      np.testing.assert_allclose(np.asarray(logits), np.asarray(want), atol=1e-5 * scale, rtol=0)
      print('fsdp', fsdp, 'ok')
    """
)


def test_arrays_land_where_the_layout_says():
  assert 'fsdp True ok' in run_on_devices(_SCRIPT)
