"""mT5 size configs: abstract parameter counts (nothing allocated) and validation."""

import functools

import numpy as np
import pytest

from pali_pax.convert import mt5_common
from pali_pax.fiddle_configs import mt5 as mt5_configs


@functools.lru_cache
def _count(size: str) -> int:
  shapes = mt5_common.expected_params(mt5_configs.mt5_config(size))
  return sum(int(np.prod(x.shape)) for x in mt5_common.tree.flatten(shapes).values())


def _formula(size: str, vocab: int = 250_112, buckets: int = 32) -> int:  # mT5 public vocab
  d, enc, dec, f, n, h = mt5_configs.MT5_SIZES[size]
  inner = n * h
  per_enc = 4 * d * inner + 3 * d * f + 2 * d
  per_dec = 8 * d * inner + 3 * d * f + 3 * d
  stacks = enc * per_enc + dec * per_dec + 2 * (d + buckets * n)
  return 2 * vocab * d + stacks


@pytest.mark.parametrize(
  'size, published',
  [('large', 1.2e9), ('xxl', 13e9)],
)
def test_parameter_counts(size, published):
  count = _count(size)
  assert count == _formula(size)
  assert abs(count - published) / published < 0.03, count


def test_large_matches_hf_mt5_large_exactly():
  # HF google/mt5-large: sum of parameter sizes (shared + encoder + decoder + lm_head).
  assert _count('large') == 1_229_581_312


def test_unknown_size_lists_valid_sizes():
  with pytest.raises(ValueError, match='valid sizes: tiny, mini, small, base, large, xl, xxl'):
    mt5_configs.mt5_config('huge')


def test_bad_overrides_raise():
  with pytest.raises(ValueError, match='unknown mT5 hparams'):
    mt5_configs.mt5_config('tiny', num_layers=3)
  with pytest.raises(ValueError, match='num_heads'):
    mt5_configs.mt5_config('tiny', num_heads=-1)
  with pytest.raises(ValueError, match='buckets'):
    mt5_configs.mt5_config('tiny', relative_attention_num_buckets=5)
