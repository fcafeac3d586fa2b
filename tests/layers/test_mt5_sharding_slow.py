"""mT5 sharded forward (and cached step) on 8 emulated CPU devices equals the unsharded run."""

import textwrap

import pytest

from tests.devices import run_on_devices

pytestmark = pytest.mark.slow

_SHARDED_SCRIPT = textwrap.dedent(
  """
    import os
    os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=8'
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from praxis import base_layer
    from pali_pax.fiddle_configs import mt5 as mt5_configs
    from tests.numerics import assert_f32_close, transformer_chain
    from pali_pax.fiddle_configs import sharding
    assert jax.device_count() == 8
    AXES = sharding.MESH_AXIS_NAMES
    B, S, T = 8, 11, 6
    rng = np.random.default_rng(0)
    ids = rng.integers(2, 128, (B, S)).astype(np.int32)
    pad = (np.arange(S)[None] >= rng.integers(3, S + 1, (B, 1))).astype(np.float32)
    dids = rng.integers(2, 128, (B, T)).astype(np.int32)
    dpad = np.zeros((B, T), np.float32)
    ctx = base_layer.JaxContext.HParams(do_eval=True)
    # mT5 'tiny': width 32, 2 + 2 layers, d_ff 48, d_kv 8; + the output projection.
    CHAIN = (transformer_chain(2, 32, 48, S, 8) + transformer_chain(2, 32, 48, T, 8, S) + 32)

    def build(mesh_shape):
      cfg = mt5_configs.mt5_config('tiny', vocab_size=128, relative_attention_num_buckets=8,
                                   relative_attention_max_distance=16)
      if mesh_shape:
        sharding.shard_mt5(cfg, mesh_shape)
      return base_layer.instantiate(cfg)

    def run(model, params):
      def fwd(p, ids, pad, dids, dpad):
        with base_layer.JaxContext.new_context(hparams=ctx):
          logits = model.apply({'params': p}, ids, pad, dids, dpad)
          # One cached decoding step too, so the cache annotations are exercised.
          def steps(mdl):
            enc = mdl.encode(mdl.embed(ids), pad)
            mdl.decode(enc, pad, dids, dpad)
            return mdl.extend_step(dids[:, 2], 2)
          step, _ = model.apply({'params': p}, method=steps, mutable=['decoder_cache'])
        return logits, step
      return fwd

    plain = build(None)
    with base_layer.JaxContext.new_context(hparams=ctx):
      params = plain.init(jax.random.PRNGKey(1), ids, pad, dids, dpad)['params']
    want = jax.jit(run(plain, params))(params, ids, pad, dids, dpad)
    for shape in ([1, 2, 4], [1, 4, 2]):
      model = build(shape)
      mesh = Mesh(np.array(jax.devices()).reshape(shape), AXES)
      with base_layer.JaxContext.new_context(hparams=ctx):
        hp = model.abstract_init_with_metadata(ids, pad, dids, dpad)
      specs = base_layer.var_partition_specs(hp, mesh_shape=shape, device_axis_names=list(AXES))['params']
      assert specs['decoder']['x_layers_0']['self_attention']['query']['w'] == P(None, 'mdl', None)
      assert specs['softmax']['logits_ffn']['linear']['w'] == P(None, 'mdl')
      with mesh:
        p = jax.device_put(params, jax.tree_util.tree_map(lambda s: NamedSharding(mesh, s), specs))
        b = NamedSharding(mesh, P(sharding.BATCH_AXES, None))
        got = jax.jit(run(model, p))(p, *[jax.device_put(x, b) for x in (ids, pad, dids, dpad)])
      for g, w in zip(got, want):
        assert_f32_close(g, w, CHAIN)
      print('mesh', shape, 'ok')
    """
)


def test_sharded_forward_matches_unsharded():
  assert 'mesh [1, 4, 2] ok' in run_on_devices(_SHARDED_SCRIPT)
