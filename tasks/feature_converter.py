"""seqio feature converter from PaLI task features to the model batch (`pali_pax.core.batch`).

  task features (per example)            model features (per example)
  inputs     int32 [<= Ti]       ->   encoder_input_tokens   int32   [Ti]   0-padded
  targets    int32 [<= To]       ->   decoder_target_tokens  int32   [To]   0-padded
                                      decoder_input_tokens   int32   [To]   targets shifted right, 0 first
                                      decoder_loss_weights   float32 [To]   1.0 on real target tokens
  image      float32 [H, W, 3]   ->   image                  float32 [H, W, 3]
  has_image  float32 []          ->   has_image              float32 []

No packing (each example keeps its own image). `task_feature_lengths` names
only 'inputs' and 'targets' ({'inputs': Ti, 'targets': To}); the image size
comes from the constructor or, if not given, from the dataset's static image
shape. The same rules as `batch.make_batch`, in tf.data. Works through `paxml.seqio_input.SeqIOInput(feature_converter=...)`,
which batches these into [B, ...] and adds its eval bookkeeping keys.
"""

from collections.abc import Mapping

import seqio
import tensorflow as tf

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors

Spec = seqio.FeatureConverter.FeatureSpec


class PaliFeatureConverter(seqio.FeatureConverter):
  """Inputs/targets/image -> encoder/decoder tokens, loss weights, image, has_image.

  Args:
    image_size: side of the square images (H = W) for the output length check;
      None = read it from the dataset's static shape when converting.
    bos_id: first decoder input token (`batch.DECODER_START_ID`).
    apply_length_check: seqio's check that outputs have exactly the lengths.
  """

  TASK_FEATURES = {
    'inputs': Spec(dtype=tf.int32),
    'targets': Spec(dtype=tf.int32),
  }
  # Per example: the batch fields without their leading B.
  MODEL_FEATURES = {
    name: Spec(dtype=tf.as_dtype(f.dtype), rank=len(f.dims) - 1)
    for name, f in batch_lib.FIELDS.items()
  }
  PACKING_FEATURE_DTYPES = {}

  def __init__(
    self,
    image_size: int | None = None,
    bos_id: int = batch_lib.DECODER_START_ID,
    apply_length_check: bool = True,
    pack: bool = False,
  ):
    if pack:
      raise errors.ConfigError(
        'PaliFeatureConverter does not pack: every example carries its own image'
      )
    super().__init__(pack=False, apply_length_check=apply_length_check, bos_id=bos_id)
    self._image_size = image_size
    self._seen_image_size: int | None = None

  def __str__(self) -> str:
    return f'{type(self).__name__}(image_size={self._image_size}, bos_id={self.bos_id})'

  @tf.autograph.experimental.do_not_convert
  def _convert_example(self, ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    targets = ex['targets']
    return {
      'encoder_input_tokens': ex['inputs'],
      'decoder_target_tokens': targets,
      'decoder_input_tokens': seqio.utils.make_autoregressive_inputs(targets, bos_id=self.bos_id),
      'decoder_loss_weights': seqio.non_padding_position(
        targets, dtype=tf.float32, pad_id=batch_lib.PAD_ID
      ),
      'image': tf.cast(ex['image'], tf.float32),
      'has_image': tf.cast(ex['has_image'], tf.float32),
    }

  @tf.autograph.experimental.do_not_convert
  def convert_batch(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Task features of B examples, already padded to their lengths -> the model features.

    batch: inputs int32 [B, Ti], targets int32 [B, To] (0-padded), image [B, H, W, 3],
    has_image [B]. The same rows as converting each example (the step-indexed input's
    batched path: one call per batch instead of one per example).
    """
    targets = batch['targets']
    bos = tf.fill([tf.shape(targets)[0], 1], tf.constant(self.bos_id, targets.dtype))
    return {
      'encoder_input_tokens': batch['inputs'],
      'decoder_target_tokens': targets,
      'decoder_input_tokens': tf.concat([bos, targets[:, :-1]], axis=1),
      'decoder_loss_weights': tf.cast(tf.not_equal(targets, batch_lib.PAD_ID), tf.float32),
      'image': tf.cast(batch['image'], tf.float32),
      'has_image': tf.cast(batch['has_image'], tf.float32),
    }

  def _convert_features(
    self, ds: tf.data.Dataset, task_feature_lengths: Mapping[str, int]
  ) -> tf.data.Dataset:
    """Pads/trims inputs and targets, then maps to the model features (others dropped)."""
    spec = ds.element_spec
    for key in ('image', 'has_image'):
      rank = self.MODEL_FEATURES[key].rank
      if key not in spec:
        raise errors.ConfigError(
          f"PaliFeatureConverter: the dataset has no '{key}' feature; got {sorted(spec)}"
        )
      if len(spec[key].shape) != rank:
        raise errors.ConfigError(
          f"PaliFeatureConverter: '{key}' must have rank {rank}, got shape {spec[key].shape}"
        )
    self._seen_image_size = spec['image'].shape[0]
    if self._image_size is not None and self._seen_image_size not in (None, self._image_size):
      raise errors.ConfigError(
        f'PaliFeatureConverter(image_size={self._image_size}) got images of height {self._seen_image_size}'
      )
    ds = seqio.utils.trim_and_pad_dataset(ds, task_feature_lengths)
    return ds.map(self._convert_example, num_parallel_calls=tf.data.AUTOTUNE)

  def get_model_feature_lengths(self, task_feature_lengths: Mapping[str, int]) -> dict[str, int]:
    """Lengths of the model features ('image': its height H; 'has_image' is a scalar)."""
    image_size = self._image_size or self._seen_image_size
    if image_size is None:
      raise errors.ConfigError(
        'PaliFeatureConverter needs image_size (constructor) when the image shape is not static'
      )
    ti, to = task_feature_lengths['inputs'], task_feature_lengths['targets']
    return {
      'encoder_input_tokens': ti,
      'decoder_target_tokens': to,
      'decoder_input_tokens': to,
      'decoder_loss_weights': to,
      'image': image_size,
      'has_image': 1,
    }
