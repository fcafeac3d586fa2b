"""Fiddle configs of the mT5 encoder-decoder (`pali_pax.layers.mt5`).

Sizes follow the mT5 paper / public checkpoints; 'tiny' is for tests, 'mini' for the CPU demo:

| size  | model_dims | enc/dec layers | hidden_dims | heads | dim_per_head |
|-------|-----------:|---------------:|------------:|------:|-------------:|
| tiny  |         32 |            2/2 |          48 |     4 |            8 |
| mini  |         64 |            2/2 |         128 |     4 |           16 |
| small |        512 |            8/8 |        1024 |     6 |           64 |
| base  |        768 |          12/12 |        2048 |    12 |           64 |
| large |       1024 |          24/24 |        2816 |    16 |           64 |
| xl    |       2048 |          24/24 |        5120 |    32 |           64 |
| xxl   |       4096 |          24/24 |       10240 |    64 |           64 |
"""

from typing import Any

from praxis import pax_fiddle

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors
from pali_pax.layers import mt5

__all__ = ['MT5_SIZES', 'mt5_config']

# size -> (model_dims, num_encoder_layers, num_decoder_layers, hidden_dims, num_heads, dim_per_head)
MT5_SIZES: dict[str, tuple[int, int, int, int, int, int]] = {
  'tiny': (32, 2, 2, 48, 4, 8),
  'mini': (64, 2, 2, 128, 4, 16),
  'small': (512, 8, 8, 1024, 6, 64),
  'base': (768, 12, 12, 2048, 12, 64),
  'large': (1024, 24, 24, 2816, 16, 64),
  'xl': (2048, 24, 24, 5120, 32, 64),
  'xxl': (4096, 24, 24, 10240, 64, 64),
}

_SIZE_FIELDS = (
  'model_dims',
  'num_encoder_layers',
  'num_decoder_layers',
  'hidden_dims',
  'num_heads',
  'dim_per_head',
)


def mt5_config(
  size: str = 'large',
  vocab_size: int = batch_lib.MT5_VOCAB_SIZE,
  *,
  dropout_prob: float = 0.0,
  relative_attention_num_buckets: int = 32,
  relative_attention_max_distance: int = 128,
  layer_norm_epsilon: float = 1e-6,
  name: str = 'mt5',
  scan: bool = False,
  **overrides: Any,
) -> pax_fiddle.Config[mt5.Mt5EncoderDecoder]:
  """The `Mt5EncoderDecoder` config of one mT5 size.

  Args:
    size: one of `MT5_SIZES` ('tiny', 'small', 'base', 'large', 'xl', 'xxl').
    vocab_size: vocabulary size (250112 for the mT5 SentencePiece model).
    dropout_prob: dropout rate (mT5 pretraining used 0.0; fine-tuning 0.1).
    relative_attention_num_buckets: relative position buckets.
    relative_attention_max_distance: relative position max distance.
    layer_norm_epsilon: RMSNorm epsilon.
    name: layer name.
    scan: run the encoder and decoder blocks under praxis Repeat (one
      compiled block, rematerialised; params under `repeat/sub/` with a
      leading [layers] axis). Off by default: the per-layer tree is the one
      the checkpoint converters and existing checkpoints use (the converters
      stack it for a scanned config).
    **overrides: any size field (model_dims, num_encoder_layers,
      num_decoder_layers, hidden_dims, num_heads, dim_per_head) to override.

  Returns:
    An unsharded `pax_fiddle.Config[Mt5EncoderDecoder]` (see
    `fiddle_configs.sharding.shard_mt5`).

  Raises:
    ValueError: unknown size, unknown override or inconsistent hparams.
  """
  if size not in MT5_SIZES:
    raise errors.ConfigError(f'unknown mT5 size {size!r}; valid sizes: {", ".join(MT5_SIZES)}')
  unknown = sorted(set(overrides) - set(_SIZE_FIELDS))
  if unknown:
    raise errors.ConfigError(f'unknown mT5 hparams {unknown}; overridable: {list(_SIZE_FIELDS)}')
  dims = dict(zip(_SIZE_FIELDS, MT5_SIZES[size], strict=True))
  dims.update(overrides)
  mt5.validate_mt5_hparams(
    vocab_size=vocab_size,
    model_dims=dims['model_dims'],
    num_encoder_layers=dims['num_encoder_layers'],
    num_decoder_layers=dims['num_decoder_layers'],
    num_heads=dims['num_heads'],
    dim_per_head=dims['dim_per_head'],
    hidden_dims=dims['hidden_dims'],
    relative_attention_num_buckets=relative_attention_num_buckets,
    relative_attention_max_distance=relative_attention_max_distance,
    dropout_prob=dropout_prob,
  )
  cfg = pax_fiddle.Config(
    mt5.Mt5EncoderDecoder,
    name=name,
    vocab_size=vocab_size,
    relative_attention_num_buckets=relative_attention_num_buckets,
    relative_attention_max_distance=relative_attention_max_distance,
    layer_norm_epsilon=layer_norm_epsilon,
    dropout_prob=dropout_prob,
    **dims,
  )
  cfg.encoder_tpl.scan = scan
  cfg.decoder_tpl.scan = scan
  return cfg
