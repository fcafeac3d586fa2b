"""In-graph (TensorFlow) pre- and post-processing of the SavedModel's serving signature.

Images are decoded and resized by the tasks' own functions (`pali_pax.tasks.image_ops`:
`decode_image`, `resize_and_scale`, `header_pixels`), so a served image becomes exactly
the model input that training and evaluation read. Prompts are tokenized and outputs
detokenized with tensorflow_text's SentencePiece op on the job's vocabulary model
(the serialized proto seqio uses, sentinels included), with the rules of
`seqio.SentencePieceVocabulary.decode_tf` (ids past the base vocabulary read as unk,
everything after the first eos dropped), which is what `Predictor.generate` decodes.
"""

import tensorflow as tf
import tensorflow_text as tf_text

from pali_pax.core import batch as batch_lib
from pali_pax.tasks import image_ops


def decode_images(data: tf.Tensor, image_size: int, max_pixels: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Encoded images tf.string [B] -> (float32 [B, S, S, 3] in [-1, 1], has_image float32 [B]).

  An empty string is a text-only example (zero image, has_image 0), as in the tasks'
  `allow_text_only`. Undecodable bytes fail the call (InvalidArgumentError); an image
  whose header declares more than `max_pixels` pixels fails before it is decoded.
  """

  def one(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    def decoded() -> tuple[tf.Tensor, tf.Tensor]:
      check = tf.debugging.assert_less_equal(
        image_ops.header_pixels(x),
        tf.constant(max_pixels, tf.int64),
        message=f'image: more than {max_pixels} pixels',
      )
      with tf.control_dependencies([check]):
        img = image_ops.resize_and_scale(image_ops.decode_image(x), image_size)
      return img, tf.constant(1.0)

    empty = tf.equal(tf.strings.length(x), 0)
    return tf.cond(empty, lambda: (image_ops.zero_image(image_size), tf.constant(0.0)), decoded)

  spec = (
    tf.TensorSpec([image_size, image_size, 3], tf.float32),
    tf.TensorSpec([], tf.float32),
  )
  return tf.map_fn(one, data, fn_output_signature=spec)


def tokenize(
  tokenizer: tf_text.SentencepieceTokenizer, prompts: tf.Tensor, max_input_len: int
) -> tf.Tensor:
  """Prompts tf.string [B] -> int32 [B, max_input_len]: ids, eos, PAD_ID after.

  A prompt of more than `max_input_len` tokens (eos included) fails the call
  (InvalidArgumentError naming `prompt`); it is never cut.
  """
  pieces = tokenizer.tokenize(prompts)
  eos = tf.fill([tf.shape(prompts)[0], 1], tf.constant(batch_lib.EOS_ID, pieces.dtype))
  ids = tf.concat([pieces, tf.RaggedTensor.from_tensor(eos)], axis=1)
  check = tf.debugging.assert_less_equal(
    tf.reduce_max(tf.concat([ids.row_lengths(), [0]], 0)),
    tf.constant(max_input_len, tf.int64),
    message=f'prompt: longer than MAX_INPUT_LEN = {max_input_len} tokens (eos included)',
  )
  with tf.control_dependencies([check]):
    dense = ids.to_tensor(batch_lib.PAD_ID, shape=[None, max_input_len])
  return tf.cast(dense, tf.int32)


def detokenize(
  tokenizer: tf_text.SentencepieceTokenizer, ids: tf.Tensor, base_vocab_size: int, unk_id: int
) -> tf.Tensor:
  """Generated ids int32 [B, L] -> text tf.string [B] (up to the first eos, eos dropped)."""
  ids = tf.where(ids < base_vocab_size, ids, unk_id)
  after_eos = tf.cumsum(tf.cast(tf.equal(ids, batch_lib.EOS_ID), tf.int32), axis=-1)
  ids = tf.where(after_eos > 0, batch_lib.PAD_ID, ids)  # eos and everything after it
  return tokenizer.detokenize(ids)
