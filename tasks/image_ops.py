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

Examples whose image cannot be used are dropped instead of failing the
pipeline, and counted per reason (`pali_pax.tasks.drop_counts`):
- 'empty': 0 bytes on an image task (with `allow_text_only` an empty string
  means a text-only example instead);
- 'too_large': the header declares more than `max_pixels` pixels (default
  `MAX_IMAGE_PIXELS`); the size is read from the JPEG / PNG / GIF / BMP header
  (`tf.io.extract_jpeg_shape` for JPEG) before anything is decoded, so a small
  file declaring a huge image never allocates it;
- 'undecodable': corrupt, truncated or unsupported (e.g. 1-bit BMP).
Each decode runs in its own one-element dataset with `ignore_errors`, so only
decoding errors are swallowed (a reader failing upstream still raises); a
failure yields a flagged placeholder that is counted and filtered out.
`dropped_images(name)` reads the counts, each drop is also logged (absl
warning), and `log_dropped_images()` logs the totals.

Text-only examples (`add_text_only_image`) carry a zero image and has_image 0.
"""

from collections.abc import Callable, Mapping

import numpy as np
import tensorflow as tf

from pali_pax.core import batch as batch_lib
from pali_pax.core import errors
from pali_pax.tasks import drop_counts

# Largest image (width x height, from its header) decoded by default: 25 MP, e.g.
# 5000 x 5000, is ~300 MB as the float32 image that is resized. PaLI resizes to
# 224 or 588 px, so larger images add memory, not information.
MAX_IMAGE_PIXELS = 25_000_000

# Status of an example after the decode attempt; what is dropped says why.
_STATUS = '_image_status'
_IMAGE, _TEXT_ONLY, _EMPTY, _TOO_LARGE, _UNDECODABLE = range(5)
_DROP_REASONS = {_EMPTY: 'empty', _TOO_LARGE: 'too_large', _UNDECODABLE: 'undecodable'}


def dropped_images(name: str | None = None, reason: str | None = None) -> int:
  """Examples dropped for their image so far: for counter `name` (or all), per reason (or all)."""
  if reason is not None:
    return drop_counts.count(name, reason)
  return sum(drop_counts.count(name, r) for r in _DROP_REASONS.values())


def log_dropped_images() -> dict[str, int]:
  """Logs (absl) every drop counter per reason; returns {counter name: images dropped}."""
  totals: dict[str, int] = {}
  for (name, reason), n in drop_counts.log_counts().items():
    if reason in _DROP_REASONS.values():
      totals[name] = totals.get(name, 0) + n
  return totals


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


def _uint(data: tf.Tensor, pos: int, nbytes: int, big_endian: bool) -> tf.Tensor:
  """Unsigned integer of `nbytes` bytes at byte `pos` of a string, as int64."""
  b = tf.cast(tf.io.decode_raw(tf.strings.substr(data, pos, nbytes), tf.uint8), tf.int64)
  weights = [256**i for i in range(nbytes)]
  return tf.reduce_sum(b * tf.constant(weights[::-1] if big_endian else weights, tf.int64))


def header_pixels(data: tf.Tensor) -> tf.Tensor:
  """Width x height (int64 scalar) declared by a JPEG/PNG/GIF/BMP header; -1 other formats.

  Reads only the header, nothing is decoded. A header cut short reads as 0 pixels
  (decoding then fails); a JPEG without a frame header raises (a tf error).
  """
  # Zero padding so that reading a truncated header never indexes past the end.
  head = tf.strings.join([tf.strings.substr(data, 0, 26), tf.constant(b'\0' * 26)])

  def jpeg() -> tf.Tensor:
    return tf.reduce_prod(tf.io.extract_jpeg_shape(data, output_type=tf.int64)[:2])

  def png() -> tf.Tensor:  # IHDR: width, height as big-endian uint32 at bytes 16, 20
    return _uint(head, 16, 4, True) * _uint(head, 20, 4, True)

  def gif() -> tf.Tensor:  # logical screen: little-endian uint16 at bytes 6, 8
    return _uint(head, 6, 2, False) * _uint(head, 8, 2, False)

  def bmp() -> tf.Tensor:  # BITMAPINFOHEADER: int32 width, height (negative = top-down)
    height = _uint(head, 22, 4, False)
    height = tf.where(height >= 2**31, 2**32 - height, height)
    return _uint(head, 18, 4, False) * height

  magic = tf.strings.substr(head, 0, 4)
  return tf.case(
    [
      (tf.equal(tf.strings.substr(magic, 0, 2), b'\xff\xd8'), jpeg),
      (tf.equal(magic, b'\x89PNG'), png),
      (tf.equal(magic, b'GIF8'), gif),
      (tf.equal(tf.strings.substr(magic, 0, 2), b'BM'), bmp),
    ],
    default=lambda: tf.constant(-1, tf.int64),
    exclusive=True,
  )


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


def load_image(path: str, image_size: int) -> np.ndarray:
  """An image file as the tasks preprocess it: float32 [image_size, image_size, 3] in [-1, 1].

  Decoded (`decode_image`: JPEG / PNG / GIF / BMP) and resized (`resize_and_scale`)
  eagerly, for `Predictor.generate` and `pali-pax predict`. `path` may be any
  tf.io.gfile path.

  Raises:
    MissingFileError: no such file.
    FileFormatError: the bytes are not a decodable image (names the file).
  """
  if not tf.io.gfile.exists(path):
    raise errors.MissingFileError(f'image {path} does not exist')
  data = tf.io.read_file(path)
  try:
    image = resize_and_scale(decode_image(data), image_size)
  except tf.errors.InvalidArgumentError as e:
    raise errors.FileFormatError(
      f'{path} is not a readable image (JPEG/PNG/GIF/BMP): {e.message}'
    ) from e
  return image.numpy()


def decode_images(
  image_size: int,
  image_key: str = 'image',
  counter: str = 'default',
  allow_text_only: bool = False,
  max_pixels: int | None = MAX_IMAGE_PIXELS,
) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
  """seqio preprocessor: encoded `image_key` bytes -> float32 image + 'has_image'.

  Args:
    image_size: output side in pixels (square).
    image_key: feature holding the encoded image (scalar tf.string).
    counter: name of the drop counters (e.g. the task name), see dropped_images().
    allow_text_only: if True an empty string means "no image" (zero image,
      has_image 0); if False (image tasks) it is dropped and counted as 'empty'.
    max_pixels: images whose header declares more pixels (width x height) are
      dropped undecoded and counted as 'too_large'; None: no cap.

  Returns:
    A function Dataset -> Dataset; examples keep their other features and get
    image float32 [image_size, image_size, 3] in [-1, 1] and has_image float32 [].
  """

  @tf.autograph.experimental.do_not_convert
  def with_image(ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    ex = dict(ex)
    data = ex[image_key]
    zero = zero_image(image_size)

    def decoded() -> tuple[tf.Tensor, tf.Tensor]:
      return resize_and_scale(decode_image(data), image_size), tf.constant(_IMAGE)

    def non_empty() -> tuple[tf.Tensor, tf.Tensor]:
      if max_pixels is None:
        return decoded()
      too_large = header_pixels(data) > max_pixels
      return tf.cond(too_large, lambda: (zero, tf.constant(_TOO_LARGE)), decoded)

    empty_status = tf.constant(_TEXT_ONLY if allow_text_only else _EMPTY)
    image, status = tf.cond(
      tf.equal(tf.strings.length(data), 0), lambda: (zero, empty_status), non_empty
    )
    ex[image_key] = image
    ex['has_image'] = tf.where(tf.equal(status, _IMAGE), 1.0, 0.0)
    ex[_STATUS] = status
    return ex

  @tf.autograph.experimental.do_not_convert
  def placeholder(ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    ex = dict(ex)
    ex[image_key] = zero_image(image_size)
    ex['has_image'] = tf.constant(0.0)
    ex[_STATUS] = tf.constant(_UNDECODABLE)
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
    for code, reason in _DROP_REASONS.items():
      drop_counts.increment(counter, reason, tf.equal(ex[_STATUS], code))
    return ex

  @tf.autograph.experimental.do_not_convert
  def keep(ex: dict[str, tf.Tensor]) -> tf.Tensor:
    return ex[_STATUS] <= _TEXT_ONLY

  @tf.autograph.experimental.do_not_convert
  def drop_status(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {k: v for k, v in ex.items() if k != _STATUS}

  def fn(ds: tf.data.Dataset) -> tf.data.Dataset:
    ds = ds.interleave(
      attempt,
      cycle_length=4,
      block_length=1,
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
    )
    return ds.map(tally).filter(keep).map(drop_status)

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
