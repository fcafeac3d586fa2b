"""set_mt5_sharding(fsdp=True): weights' model dimension also split over 'data'."""

from pali_pax.fiddle_configs import mt5 as mt5_configs


def test_fsdp_adds_the_data_axis_to_every_weight():
  plain = mt5_configs.set_mt5_sharding(mt5_configs.mt5_config('tiny'))
  fsdp = mt5_configs.set_mt5_sharding(mt5_configs.mt5_config('tiny'), fsdp=True)
  assert plain.encoder_tpl.block_tpl.attention_tpl.weight_split_dims_mapping.proj == [
    None,
    'mdl',
    None,
  ]
  for cfg_stack in (fsdp.encoder_tpl, fsdp.decoder_tpl):
    blk = cfg_stack.block_tpl
    assert blk.attention_tpl.weight_split_dims_mapping.proj == ['data', 'mdl', None]
    assert blk.ff_tpl.weight_split_dims_mapping.ffn0 == ['data', 'mdl']
    assert blk.ff_tpl.weight_split_dims_mapping.ffn1 == ['mdl', 'data']
  assert fsdp.embedding_tpl.weight_split_dims_mapping.wt == ['mdl', 'data']
  assert fsdp.softmax_tpl.weight_split_dims_mapping.wt == ['data', 'mdl']
  # Activations are split as before: only the weights move.
  assert (
    fsdp.encoder_tpl.activation_split_dims_mapping.bld
    == plain.encoder_tpl.activation_split_dims_mapping.bld
  )
