"""pali_pax.core.batch: the numpy batch builder against hand-written batches, and the docs table."""

import os
import re

import numpy as np
import pytest

from pali_pax.core import batch as batch_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_targets_give_shifted_inputs_and_weights():
  b = batch_lib.make_batch([[7, 8, 1], [3, 1]], [[5, 6, 1], [4, 1]], image_size=2)
  np.testing.assert_array_equal(b.encoder_input_tokens, [[7, 8, 1], [3, 1, 0]])
  np.testing.assert_array_equal(b.decoder_target_tokens, [[5, 6, 1], [4, 1, 0]])
  np.testing.assert_array_equal(b.decoder_input_tokens, [[0, 5, 6], [0, 4, 1]])
  np.testing.assert_array_equal(b.decoder_loss_weights, [[1, 1, 1], [1, 1, 0]])
  np.testing.assert_array_equal(b.image, np.zeros((2, 2, 2, 3)))
  np.testing.assert_array_equal(b.has_image, [0, 0])  # no images: text-only rows


def test_lengths_pad_and_trim_like_seqio():
  b = batch_lib.make_batch(
    [[7, 8, 9, 1]], [[5, 6, 7, 8, 1]], images=np.ones((1, 3, 3, 3)), input_len=6, target_len=3
  )
  np.testing.assert_array_equal(b.encoder_input_tokens, [[7, 8, 9, 1, 0, 0]])
  np.testing.assert_array_equal(b.decoder_target_tokens, [[5, 6, 7]])  # eos cut, as seqio trims
  np.testing.assert_array_equal(b.decoder_input_tokens, [[0, 5, 6]])
  np.testing.assert_array_equal(b.has_image, [1])


def test_given_decoder_inputs_are_all_real_positions():
  b = batch_lib.make_batch([[7, 1]], decoder_input_tokens=[[0, 5, 0, 6]])
  np.testing.assert_array_equal(b.decoder_input_tokens, [[0, 5, 0, 6]])
  np.testing.assert_array_equal(b.decoder_target_tokens, [[5, 0, 6, 0]])
  np.testing.assert_array_equal(b.decoder_loss_weights, [[1, 1, 1, 1]])


def test_decoding_batch_has_one_start_token():
  b = batch_lib.make_batch(np.array([[7, 1], [8, 1]]))
  np.testing.assert_array_equal(b.decoder_input_tokens, [[0], [0]])
  np.testing.assert_array_equal(b.decoder_loss_weights, [[0], [0]])


def test_dtypes_and_shapes_follow_the_fields():
  b = batch_lib.dummy_batch(5, batch=2, input_len=3, target_len=4)
  specs = batch_lib.batch_specs(5, batch=2, input_len=3, target_len=4)
  assert set(b) == set(specs) == set(batch_lib.FIELDS)
  for name, field in batch_lib.FIELDS.items():
    assert b[name].dtype == field.dtype and specs[name].dtype == field.dtype, name
    assert b[name].shape == specs[name].shape, name
  assert specs.image.shape == (2, 5, 5, 3) and specs.decoder_loss_weights.shape == (2, 4)


def test_scale_pixels_maps_0_255_to_the_unit_interval():
  np.testing.assert_allclose(batch_lib.scale_pixels(np.array([0.0, 127.5, 255.0])), [-1, 0, 1])


def test_bad_input_names_the_field():
  with pytest.raises(ValueError, match='2 images for 1 prompts'):
    batch_lib.make_batch([[1]], images=np.zeros((2, 2, 2, 3)))
  with pytest.raises(ValueError, match=r'decoder_\w+ must be \[B, To\] with B = 1, got shape'):
    batch_lib.make_batch([[1]], [[1], [1]])
  with pytest.raises(ValueError, match='encoder_input_tokens: row 0 must be 1-D integer ids'):
    batch_lib.make_batch([[0.5]])
  with pytest.raises(ValueError, match='not both'):
    batch_lib.make_batch([[1]], [[1]], decoder_input_tokens=[[0]])
  with pytest.raises(ValueError, match=r'image must be \[B, H, W, 3\] with B = 1, got shape'):
    batch_lib.make_batch([[1]], images=np.zeros((1, 2, 2)))
  with pytest.raises(ValueError, match=r'has_image must be \[B\] with B = 1'):
    batch_lib.make_batch([[1]], images=np.zeros((1, 2, 2, 3)), has_image=1.0)


def test_docs_table_matches_the_fields():
  with open(os.path.join(ROOT, 'docs', 'CONTRACTS.md')) as f:
    rows = re.findall(r'^\| (\w+) \| (\w+) \| \[([^\]]+)\] \|', f.read(), re.MULTILINE)
  documented = {name: (dtype, tuple(dims.split(', '))) for name, dtype, dims in rows}
  fields = {n: (np.dtype(f.dtype).name, f.dims) for n, f in batch_lib.FIELDS.items()}
  assert documented == fields
