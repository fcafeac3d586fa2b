"""PaliFeatureConverter: the model batch of `pali_pax.core.batch`, directly and through SeqIOInput."""

import numpy as np
import pytest
import tensorflow as tf

from pali_pax.core import batch as batch_lib
from pali_pax.tasks import feature_converter, synthetic_tasks

MODEL_KEYS = {
  'encoder_input_tokens',
  'decoder_input_tokens',
  'decoder_target_tokens',
  'decoder_loss_weights',
  'image',
  'has_image',
}


def _dataset():
  return tf.data.Dataset.from_tensors(
    {
      'inputs': tf.constant([7, 8, 1], tf.int32),
      'targets': tf.constant([5, 6, 1], tf.int32),
      'image': tf.ones([4, 4, 3]),
      'has_image': tf.constant(1.0),
      'inputs_pretokenized': tf.constant('dropped'),
    }
  )


def test_converts_and_pads():
  fc = feature_converter.PaliFeatureConverter(image_size=4)
  ex = next(fc(_dataset(), {'inputs': 5, 'targets': 4}).as_numpy_iterator())
  assert set(ex) == MODEL_KEYS
  np.testing.assert_array_equal(ex['encoder_input_tokens'], [7, 8, 1, 0, 0])
  np.testing.assert_array_equal(ex['decoder_target_tokens'], [5, 6, 1, 0])
  np.testing.assert_array_equal(ex['decoder_input_tokens'], [0, 5, 6, 1])
  np.testing.assert_array_equal(ex['decoder_loss_weights'], [1, 1, 1, 0])
  assert ex['decoder_loss_weights'].dtype == np.float32 and ex['image'].shape == (4, 4, 3)
  assert ex['has_image'] == 1.0
  assert fc.get_model_feature_lengths({'inputs': 5, 'targets': 4})['decoder_input_tokens'] == 4


def test_same_batch_as_the_numpy_builder():
  """The tf.data converter and `batch.make_batch` are one contract: equal batches, with
  padding, full-length rows and a text-only example."""
  inputs = [[7, 8, 9, 10, 1], [3, 1]]
  targets = [[5, 6, 1], [4, 4, 4, 1]]
  images = np.random.default_rng(0).uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
  has_image = [1.0, 0.0]
  ds = tf.data.Dataset.from_tensor_slices(
    {'inputs': tf.ragged.constant(inputs), 'targets': tf.ragged.constant(targets)}
  )
  extra = tf.data.Dataset.from_tensor_slices({'image': images, 'has_image': has_image})
  ds = tf.data.Dataset.zip(ds, extra).map(
    lambda a, b: {'inputs': a['inputs'], 'targets': a['targets'], **b}
  )
  fc = feature_converter.PaliFeatureConverter(image_size=4)
  got = next(fc(ds, {'inputs': 5, 'targets': 4}).batch(2).as_numpy_iterator())
  want = batch_lib.make_batch(
    inputs, targets, images=images, has_image=has_image, input_len=5, target_len=4
  )
  assert set(got) == set(want) == set(batch_lib.FIELDS)
  for key, value in want.items():
    assert got[key].dtype == value.dtype, key
    np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_image_size_inferred_and_errors():
  fc = feature_converter.PaliFeatureConverter()
  ex = next(fc(_dataset(), {'inputs': 3, 'targets': 3}).as_numpy_iterator())
  assert ex['image'].shape == (4, 4, 3)
  with pytest.raises(ValueError, match='got images of height 4'):
    feature_converter.PaliFeatureConverter(image_size=8)(_dataset(), {'inputs': 3, 'targets': 3})
  no_image = _dataset().map(lambda ex: {k: v for k, v in ex.items() if k != 'image'})
  with pytest.raises(ValueError, match="no 'image' feature"):
    fc(no_image, {'inputs': 3, 'targets': 3})
  with pytest.raises(ValueError, match='does not pack'):
    feature_converter.PaliFeatureConverter(pack=True)


def test_one_batch_through_paxml_seqio_input():
  from paxml import seqio_input
  from praxis import base_hyperparams, pax_fiddle

  name = synthetic_tasks.register_synthetic_tasks(
    image_size=32, suffix='_test32', num_validation_examples=32
  )
  config = pax_fiddle.Config(
    seqio_input.SeqIOInput,
    mixture_name=name,
    split_name='train',
    is_training=True,
    task_feature_lengths={'inputs': 48, 'targets': 40},
    feature_converter=pax_fiddle.Config(feature_converter.PaliFeatureConverter, image_size=32),
    batch_size=4,
    input_random_seed=1,
  )
  inp = base_hyperparams.instantiate(config)
  batch = inp.get_next()
  expected = {
    'encoder_input_tokens': ((4, 48), np.int32),
    'decoder_input_tokens': ((4, 40), np.int32),
    'decoder_target_tokens': ((4, 40), np.int32),
    'decoder_loss_weights': ((4, 40), np.float32),
    'image': ((4, 32, 32, 3), np.float32),
    'has_image': ((4,), np.float32),
  }
  for key, (shape, dtype) in expected.items():
    assert batch[key].shape == shape and batch[key].dtype == dtype, key
  np.testing.assert_array_equal(batch['decoder_input_tokens'][:, 0], 0)
  np.testing.assert_array_equal(
    batch['decoder_loss_weights'], (batch['decoder_target_tokens'] > 0).astype(np.float32)
  )
  prompts = inp.ids_to_strings(batch['encoder_input_tokens'], None)
  assert all(
    p.startswith(('Generate', 'Answer', 'Detect')) or '<extra_id_0>' in p for p in prompts
  ), prompts


def test_eval_input_and_decode_metrics_through_seqio_input():
  """Eval split of one task: paxml matches outputs to targets by enumeration ids and runs
  the task's metric fns (each 100 when the 'model' outputs the targets)."""
  from paxml import seqio_input
  from praxis import base_hyperparams, pax_fiddle, py_utils

  synthetic_tasks.register_synthetic_tasks(
    image_size=32, suffix='_test32', num_validation_examples=32
  )
  config = pax_fiddle.Config(
    seqio_input.SeqIOInput,
    mixture_name='pali_synthetic_vqa_test32',
    split_name='validation',
    is_training=False,
    task_feature_lengths={'inputs': 48, 'targets': 40},
    feature_converter=pax_fiddle.Config(feature_converter.PaliFeatureConverter, image_size=32),
    batch_size=16,
    reset_for_eval=True,
  )
  inp = base_hyperparams.instantiate(config)
  outputs = []
  for _ in range(2):
    batch = inp.get_next()
    for i in range(16):
      key = py_utils.get_enumeration_id({k: v[i] for k, v in batch.items()})
      outputs.append((key, {'decoded_substr': batch['decoder_target_tokens'][i]}))
  with pytest.raises(StopIteration):
    inp.get_next()
  assert inp.compute_metrics(outputs) == [{'vqa_accuracy': 100.0}, {'exact_match': 100.0}]
