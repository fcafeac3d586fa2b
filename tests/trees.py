"""Exact comparisons of parameter trees and checkpoint tensor dicts (converters, export)."""

import numpy as np

from pali_pax.core.tree import flatten

# The pooling heads of SigLIP / big_vision checkpoints: PaLI's ViT has none, so a
# round trip through our converters drops them.
POOLING_HEADS = ('vision_model.head.', 'MAPHead_0/', 'head/')


def assert_trees_equal(got: dict, want: dict, dtype: np.dtype | None = None) -> None:
  """Nested dicts with the same leaves, bit for bit (and of `dtype` when given)."""
  got, want = flatten(got), flatten(want)
  assert set(got) == set(want)
  for key in want:
    assert dtype is None or got[key].dtype == dtype, (key, got[key].dtype)
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def assert_same_tensors(got: dict, original: dict) -> None:
  """`got` holds every float32 tensor of `original` except pooling heads, bit for bit."""
  kept = {k for k in original if not k.startswith(POOLING_HEADS)}
  assert set(got) == kept
  for key in kept:
    assert got[key].dtype == np.float32, key
    np.testing.assert_array_equal(got[key], original[key], err_msg=key)
