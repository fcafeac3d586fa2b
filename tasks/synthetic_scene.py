"""Synthetic scenes in pure TensorFlow: sampling and rendering, no Python per example.

A scene is 1..max_objects shapes (circle / square / triangle, colours of
`synthetic_words.COLOURS`) on a gray background, or one rendered Latin word for
OCR. Objects of a scene have distinct colours and distinct shapes and sit in
disjoint slots (side by side, or stacked), so everything said about the scene
is determined by the picture. Object k is in slot k: reading order (left to
right, or top to bottom).

Everything is a function of a stateless seed ([2] int), so tf.data can generate
examples in parallel threads with no Python callbacks (which would also make
interpreter exit hang while iterators are alive) and any example can be
regenerated from its index.

Scene tensors (M = max_objects):
  num_objects int32 []; colours int32 [M]; shapes int32 [M] (indices into
  COLOURS / SHAPES; entries >= num_objects are unused); boxes int32 [M, 4]
  (ymin, xmin, ymax, xmax) in pixels, max exclusive; valid bool [M].
"""

import functools

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from pali_pax.core import errors
from pali_pax.tasks import synthetic_words as words


def split_seed(seed: tf.Tensor, n: int) -> tf.Tensor:
  """n independent stateless seeds [n, 2] derived from `seed`."""
  return tf.random.experimental.stateless_split(seed, n)


def randint(seed: tf.Tensor, lo: int | tf.Tensor, hi: int | tf.Tensor) -> tf.Tensor:
  """Uniform int32 scalar in [lo, hi)."""
  return tf.random.stateless_uniform([], seed, minval=lo, maxval=hi, dtype=tf.int32)


def sample_scene(seed: tf.Tensor, size: int, max_objects: int) -> dict[str, tf.Tensor]:
  """Draws the objects of one scene (see the module docstring for the tensors)."""
  if not 1 <= max_objects <= len(words.SHAPES):
    raise errors.ConfigError(f'max_objects must be in [1, {len(words.SHAPES)}], got {max_objects}')
  m = max_objects
  s = split_seed(seed, 6)
  n = randint(s[0], 1, m + 1)
  colours = tf.random.experimental.stateless_shuffle(tf.range(len(words.COLOURS)), s[1])[:m]
  shapes = tf.random.experimental.stateless_shuffle(tf.range(len(words.SHAPES)), s[2])[:m]
  stacked = randint(s[3], 0, 2) > 0
  slot = size / tf.cast(n, tf.float32)
  max_side = tf.minimum(0.9 * slot, 0.7 * size)
  u = tf.random.stateless_uniform([3, m], s[4])
  side = tf.floor(max_side * (0.6 + 0.4 * u[0]))
  along = tf.floor(tf.range(m, dtype=tf.float32) * slot + u[1] * (slot - side))
  across = tf.floor(u[2] * (size - side))
  y = tf.where(stacked, along, across)
  x = tf.where(stacked, across, along)
  boxes = tf.cast(tf.stack([y, x, y + side, x + side], axis=-1), tf.int32)
  valid = tf.range(m) < n
  return {'num_objects': n, 'colours': colours, 'shapes': shapes, 'boxes': boxes, 'valid': valid}


def _background(size: int) -> tf.Tensor:
  return tf.broadcast_to(tf.constant(words.BACKGROUND_RGB, tf.float32), [size, size, 3])


def render_shapes(scene: dict[str, tf.Tensor], size: int) -> tf.Tensor:
  """uint8 [size, size, 3]: the scene's shapes, hard edges (crisp colours)."""
  centres = tf.range(size, dtype=tf.float32) + 0.5  # pixel centres
  yy, xx = tf.meshgrid(centres, centres, indexing='ij')
  rgb_table = tf.constant([words.COLOUR_RGB[c] for c in words.COLOURS], tf.float32)
  img = _background(size)
  boxes = tf.cast(scene['boxes'], tf.float32)
  for k in range(scene['boxes'].shape[0]):
    ymin, xmin, ymax, xmax = tf.unstack(boxes[k])
    cy, cx, half = (ymin + ymax) / 2, (xmin + xmax) / 2, (ymax - ymin) / 2
    in_box = (yy >= ymin) & (yy < ymax) & (xx >= xmin) & (xx < xmax)
    circle = tf.square(yy - cy) + tf.square(xx - cx) <= tf.square(half)
    # Apex at the top middle, base along the bottom edge.
    triangle = in_box & (tf.abs(xx - cx) <= (yy - ymin) / 2)
    masks = tf.stack([circle, in_box, triangle])  # order of words.SHAPES
    mask = tf.gather(masks, scene['shapes'][k]) & scene['valid'][k]
    img = tf.where(mask[..., None], rgb_table[scene['colours'][k]], img)
  return tf.cast(img, tf.uint8)


def font_px(size: int) -> int:
  """OCR font size for an image side: 3/8 of it (12 px at 32 px: 1.5 ViT patches of 8 px tall)."""
  return max(8, 3 * size // 8)


@functools.cache
def ocr_glyphs(size: int) -> tuple[np.ndarray, np.ndarray]:
  """Rendered OCR words (PIL, once per image size; runs in the calling thread).

  Returns:
    masks: uint8 [num_words, Hm, Wm], ink coverage 0..255 of each word drawn at
      the top-left corner (anti-aliased), the font shrunk until the word fits
      90% of the side; Hm, Wm = the largest extents.
    extent: int32 [num_words, 2], (height, width) of each word's ink box.
  """
  rendered = []
  for word in words.OCR_WORDS:
    px = font_px(size)
    while True:
      try:
        font = ImageFont.load_default(size=px)
      except (TypeError, ImportError, OSError):  # Pillow without FreeType: bitmap font
        font = ImageFont.load_default()
      _, _, right, bottom = font.getbbox(word)
      if right <= 0.9 * size or px <= 6:
        break
      px -= 1
    h, w = min(bottom, size), min(right, size)
    canvas = Image.new('L', (w, h), 0)
    ImageDraw.Draw(canvas).text((0, 0), word, fill=255, font=font)
    rendered.append(np.asarray(canvas, np.uint8))
  hm, wm = max(r.shape[0] for r in rendered), max(r.shape[1] for r in rendered)
  masks = np.zeros([len(rendered), hm, wm], np.uint8)
  for i, r in enumerate(rendered):
    masks[i, : r.shape[0], : r.shape[1]] = r
  extent = np.array([r.shape for r in rendered], np.int32)
  return masks, extent


def sample_ocr(seed: tf.Tensor, size: int) -> dict[str, tf.Tensor]:
  """An OCR scene: word int32 [], word_yx int32 [2] (top-left), text_rgb int32 [] (index)."""
  _, extent = ocr_glyphs(size)
  s = split_seed(seed, 4)
  word = randint(s[0], 0, len(words.OCR_WORDS))
  h, w = tf.unstack(tf.gather(tf.constant(extent), word))
  y = randint(s[1], 0, tf.maximum(1, size - h))
  x = randint(s[2], 0, tf.maximum(1, size - w))
  return {
    'word': word,
    'word_yx': tf.stack([y, x]),
    'text_rgb': randint(s[3], 0, len(words.TEXT_RGB)),
  }


def render_ocr(ocr: dict[str, tf.Tensor], size: int) -> tf.Tensor:
  """uint8 [size, size, 3]: the word in black or white on the background."""
  masks, _ = ocr_glyphs(size)
  mask = tf.cast(tf.gather(tf.constant(masks), ocr['word']), tf.float32) / 255.0
  y, x = tf.unstack(ocr['word_yx'])
  mask = tf.pad(mask, [[y, size], [x, size]])[:size, :size, None]  # placed at (y, x)
  rgb = tf.gather(tf.constant(words.TEXT_RGB, tf.float32), ocr['text_rgb'])
  img = _background(size) * (1.0 - mask) + rgb * mask
  return tf.cast(tf.round(img), tf.uint8)
