"""Image decoding for seqio preprocessors (tf.data, graph mode, no Python per example).

`decode_images(image_size)` turns the encoded 'image' bytes of each example
into float32 [image_size, image_size, 3] in [-1, 1] plus 'has_image' = 1.0:

- JPEG, PNG, GIF (first frame), BMP via `tf.io.decode_image(channels=3,
  expand_animations=False)`: grayscale, grayscale+alpha, RGBA, 16-bit PNG and
  CMYK JPEG all come out as 8-bit RGB (checked: TF's libjpeg converts CMYK,
  including Adobe-inverted CMYK, to RGB). Alpha is dropped, not composited.
- 8-bit palette BMPs: TF returns the palette *indices* as gray levels; we look
  the colours up in the BMP palette ourselves.
- Resized (bilinear, anti-aliased) to a square of the configured side (224 or
  588 for PaLI, 32/64 for the tiny demo), aspect ratio not kept, as in PaLI.

An undecodable image (corrupt, truncated, empty, unsupported like 1-bit BMP)
drops its example instead of failing the pipeline. Each decode runs in its own
one-element dataset with `ignore_errors`, so only decoding errors are
swallowed (a reader failing upstream still raises); a failure yields a flagged
placeholder that is counted and filtered out. Counts live in tf.Variables per
counter name: `dropped_images()` after (or during) iteration, each drop is also
logged (absl warning), and `log_dropped_images()` logs the totals.

Text-only examples (`add_text_only_image`) carry a zero image and has_image 0.
"""

from collections.abc import Callable, Mapping

import tensorflow as tf
from absl import logging

from pali_pax import batch as batch_lib

_OK = '_image_decoded'
_COUNTERS: dict[str, tf.Variable] = {}


def _counter(name: str) -> tf.Variable:
  if name not in _COUNTERS:
    with tf.init_scope():  # a variable created eagerly even if first asked for inside a trace
      _COUNTERS[name] = tf.Variable(0, dtype=tf.int64, trainable=False, name=f'dropped_{name}')
  return _COUNTERS[name]


def dropped_images(name: str | None = None) -> int:
  """Examples dropped for an undecodable image so far: for counter `name`, or all."""
  if name is not None:
    return int(_counter(name).numpy())
  return int(sum(int(v.numpy()) for v in _COUNTERS.values()))


def log_dropped_images() -> dict[str, int]:
  """Logs (absl) and returns the drop count of every counter."""
  counts = {k: int(v.numpy()) for k, v in sorted(_COUNTERS.items())}
  for k, n in counts.items():
    log = logging.warning if n else logging.info
    log('pali_pax image_ops: %d example(s) dropped for undecodable images (%s)', n, k)
  return counts


def _le_int(data: tf.Tensor, pos: int, nbytes: int) -> tf.Tensor:
  """Little-endian unsigned integer at byte `pos` of a string, as int32."""
  b = tf.cast(tf.io.decode_raw(tf.strings.substr(data, pos, nbytes), tf.uint8), tf.int32)
  return tf.reduce_sum(b * tf.constant([1, 256, 65536, 16777216][:nbytes], tf.int32))


def _apply_bmp_palette(data: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
  """uint8 [H, W, 3] colours of an 8-bit palette BMP whose indices TF decoded."""
  dib_size = _le_int(data, 14, 4)
  colours_used = _le_int(data, 46, 4)
  n = tf.where(colours_used > 0, colours_used, 256)
  table = tf.io.decode_raw(tf.strings.substr(data, 14 + dib_size, 4 * n), tf.uint8)
  rgb = tf.reverse(tf.reshape(table, [-1, 4])[:, :3], axis=[1])  # stored B, G, R, 0
  idx = tf.minimum(tf.cast(indices[..., 0], tf.int32), tf.shape(rgb)[0] - 1)
  return tf.gather(rgb, idx)


def decode_image(data: tf.Tensor) -> tf.Tensor:
  """Encoded image bytes (scalar tf.string) -> uint8 [H, W, 3] RGB. Raises on bad data."""
  img = tf.io.decode_image(data, channels=3, expand_animations=False)
  img.set_shape([None, None, 3])

  def palette_or_plain() -> tf.Tensor:
    bits = _le_int(data, 28, 2)
    return tf.cond(bits <= 8, lambda: _apply_bmp_palette(data, img), lambda: img)

  # Reading the BMP header only when the magic says BMP (other formats may be < 30 bytes).
  is_bmp = tf.equal(tf.strings.substr(data, 0, 2), b'BM')
  return tf.cond(is_bmp, palette_or_plain, lambda: img)


def resize_and_scale(image: tf.Tensor, image_size: int) -> tf.Tensor:
  """uint8/float [H, W, 3] in 0..255 -> float32 [image_size, image_size, 3] in [-1, 1]."""
  x = tf.cast(image, tf.float32)
  if tuple(x.shape[:2]) != (image_size, image_size):  # already the right size (synthetic): skip
    x = tf.image.resize(x, [image_size, image_size], antialias=True)
  return batch_lib.scale_pixels(tf.clip_by_value(x, 0.0, 255.0))


def zero_image(image_size: int) -> tf.Tensor:
  """The image of a text-only example: float32 zeros [image_size, image_size, 3]."""
  return tf.zeros([image_size, image_size, 3], tf.float32)


def decode_images(
  image_size: int,
  image_key: str = 'image',
  counter: str = 'default',
  allow_text_only: bool = False,
) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
  """seqio preprocessor: encoded `image_key` bytes -> float32 image + 'has_image'.

  Args:
    image_size: output side in pixels (square).
    image_key: feature holding the encoded image (scalar tf.string).
    counter: name of the drop counter (e.g. the task name), see dropped_images().
    allow_text_only: if True an empty string means "no image" (zero image,
      has_image 0) instead of a dropped example.

  Returns:
    A function Dataset -> Dataset; examples keep their other features and get
    image float32 [image_size, image_size, 3] in [-1, 1] and has_image float32 [].
  """
  count = _counter(counter)

  @tf.autograph.experimental.do_not_convert
  def with_image(ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    ex = dict(ex)
    data = ex[image_key]
    if allow_text_only:
      empty = tf.equal(tf.strings.length(data), 0)
      ex[image_key] = tf.cond(
        empty,
        lambda: zero_image(image_size),
        lambda: resize_and_scale(decode_image(data), image_size),
      )
      ex['has_image'] = tf.where(empty, 0.0, 1.0)
    else:
      ex[image_key] = resize_and_scale(decode_image(data), image_size)
      ex['has_image'] = tf.constant(1.0)
    ex[_OK] = tf.constant(True)
    return ex

  @tf.autograph.experimental.do_not_convert
  def placeholder(ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    ex = dict(ex)
    ex[image_key] = zero_image(image_size)
    ex['has_image'] = tf.constant(0.0)
    ex[_OK] = tf.constant(False)
    return ex

  @tf.autograph.experimental.do_not_convert
  def attempt(ex: Mapping[str, tf.Tensor]) -> tf.data.Dataset:
    # Only this example's decode is inside ignore_errors; the placeholder after
    # it is taken only when the decode produced nothing.
    one = tf.data.Dataset.from_tensors(ex)
    good = one.map(with_image).ignore_errors(log_warning=True)  # logs the decode error
    return good.concatenate(one.map(placeholder)).take(1)

  @tf.autograph.experimental.do_not_convert
  def tally(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    bad = tf.logical_not(ex[_OK])
    count.assign_add(tf.cast(bad, tf.int64))

    def warn() -> tf.Tensor:
      tf.print(
        'pali_pax image_ops: dropped an example with an undecodable image',
        f'({counter})',
        output_stream=logging.warning,
        end='',
      )
      return tf.constant(0)

    tf.cond(bad, warn, lambda: tf.constant(0))
    return ex

  @tf.autograph.experimental.do_not_convert
  def drop_flag(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {k: v for k, v in ex.items() if k != _OK}

  def fn(ds: tf.data.Dataset) -> tf.data.Dataset:
    ds = ds.interleave(
      attempt,
      cycle_length=4,
      block_length=1,
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
    )
    ds = ds.map(tally).filter(tf.autograph.experimental.do_not_convert(lambda ex: ex[_OK]))
    return ds.map(drop_flag)

  return fn


def scale_images(
  image_size: int, image_key: str = 'image'
) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
  """seqio preprocessor for decoded images (uint8 [H, W, 3], e.g. synthetic ones).

  Same output as `decode_images`: float32 [image_size, image_size, 3] in [-1, 1]
  and has_image = 1.0.
  """

  @tf.autograph.experimental.do_not_convert
  def scale(ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    ex = dict(ex)
    ex[image_key] = resize_and_scale(ex[image_key], image_size)
    ex['has_image'] = tf.constant(1.0)
    return ex

  return lambda ds: ds.map(scale, num_parallel_calls=tf.data.AUTOTUNE)


def add_text_only_image(
  image_size: int, image_key: str = 'image'
) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
  """seqio preprocessor for text-only tasks: zero image and has_image = 0.0."""

  @tf.autograph.experimental.do_not_convert
  def add(ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    ex = dict(ex)
    ex[image_key] = zero_image(image_size)
    ex['has_image'] = tf.constant(0.0)
    return ex

  return lambda ds: ds.map(add, num_parallel_calls=tf.data.AUTOTUNE)
