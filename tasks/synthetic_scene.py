"""Synthetic scenes in pure TensorFlow, a batch at a time: sampling and rendering.

A scene is 1..max_objects shapes (circle / square / triangle, colours of
`synthetic_words.COLOURS`) on a gray background, or one rendered Latin word for
OCR. Objects of a scene have distinct colours and distinct shapes and sit in
disjoint slots (side by side, or stacked), so everything said about the scene
is determined by the picture. Object k is in slot k: reading order (left to
right, or top to bottom).

Every function works on a batch of n scenes at once (TF ops over a leading
batch axis: one tf.data call makes a whole batch, instead of ~100 small ops per
example), and row i depends only on its own key: its random draws are a hash of
(key, draw number) (`uniform`, `randint`, `permutation`), a counter-based
generator, so an example is the same in any batch and can be regenerated from
its index alone (exact resume, any process count).

Scene tensors (n scenes, M = max_objects):
  num_objects int32 [n]; colours int32 [n, M]; shapes int32 [n, M] (indices into
  COLOURS / SHAPES; entries >= num_objects are unused); boxes int32 [n, M, 4]
  (ymin, xmin, ymax, xmax) in pixels, max exclusive; valid bool [n, M].
"""

import functools

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from pali_pax.core import errors
from pali_pax.tasks import synthetic_words as words

_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: splitmix64's increment
_MAX_DRAWS = 64  # draws per salt (the width of a vector draw)


def mix64(z: tf.Tensor) -> tf.Tensor:
  """splitmix64's finaliser on uint64 (a bijection that spreads every input bit)."""
  for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(shift, tf.uint64)))
    z = z * tf.constant(mult, tf.uint64)
  return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(31, tf.uint64)))


def example_keys(stream: int, indices: tf.Tensor) -> tf.Tensor:
  """uint64 [n]: the key of each example of `indices` (int64 [n]) in `stream` (an int >= 0)."""
  base = mix64(tf.constant((int(stream) * _GOLDEN + 1) % 2**64, tf.uint64))
  return mix64(tf.cast(indices, tf.uint64) * tf.constant(_GOLDEN, tf.uint64) + base)


def _bits(keys: tf.Tensor, salt: int, m: int) -> tf.Tensor:
  """uint64 [n, m]: random bits, draw j of `salt` for each key (splitmix64's stream)."""
  if not 0 < m <= _MAX_DRAWS:
    raise errors.ConfigError(f'at most {_MAX_DRAWS} draws per salt, got {m}')
  steps = np.arange(salt * _MAX_DRAWS + 1, salt * _MAX_DRAWS + 1 + m, dtype=np.uint64)
  offsets = tf.constant(steps * np.uint64(_GOLDEN), tf.uint64)  # wraps mod 2**64, as meant
  return mix64(keys[:, None] + offsets[None, :])


def subkeys(keys: tf.Tensor, salt: int) -> tf.Tensor:
  """uint64 [n]: an independent key per row for a sub-draw (e.g. a scene's own draws)."""
  return _bits(keys, salt, 1)[:, 0]


def uniform(keys: tf.Tensor, salt: int, m: int = 1) -> tf.Tensor:
  """float32 [n, m] uniform in [0, 1): 24 random bits each (exact in float32, never 1)."""
  top = tf.bitwise.right_shift(_bits(keys, salt, m), tf.constant(40, tf.uint64))
  return tf.cast(top, tf.float32) * 2.0**-24


def randint(keys: tf.Tensor, salt: int, lo: int | tf.Tensor, hi: int | tf.Tensor) -> tf.Tensor:
  """int32 [n] uniform in [lo, hi) per row (`hi` an int or int32 [n]; hi > lo)."""
  top = tf.bitwise.right_shift(_bits(keys, salt, 1)[:, 0], tf.constant(32, tf.uint64))
  span = tf.cast(tf.convert_to_tensor(hi, tf.int32) - lo, tf.uint64)
  # Multiply-shift (Lemire): floor(top * span / 2**32), in [0, span), no division.
  return lo + tf.cast(tf.bitwise.right_shift(top * span, tf.constant(32, tf.uint64)), tf.int32)


def permutation(keys: tf.Tensor, salt: int, m: int) -> tf.Tensor:
  """int32 [n, m]: a uniform random permutation of range(m) per row."""
  u = tf.cast(tf.bitwise.right_shift(_bits(keys, salt, m), tf.constant(11, tf.uint64)), tf.float64)
  return tf.argsort(u, axis=1, stable=True)


def sample_scene(keys: tf.Tensor, size: int, max_objects: int) -> dict[str, tf.Tensor]:
  """Draws the objects of n scenes, keys uint64 [n] (see the module docstring for the tensors)."""
  if not 1 <= max_objects <= len(words.SHAPES):
    raise errors.ConfigError(f'max_objects must be in [1, {len(words.SHAPES)}], got {max_objects}')
  m = max_objects
  n = randint(keys, 0, 1, m + 1)
  colours = permutation(keys, 1, len(words.COLOURS))[:, :m]
  shapes = permutation(keys, 2, len(words.SHAPES))[:, :m]
  stacked = randint(keys, 3, 0, 2)[:, None] > 0  # [n, 1]
  slot = size / tf.cast(n, tf.float32)[:, None]  # [n, 1]
  max_side = tf.minimum(0.9 * slot, 0.7 * size)
  u = uniform(keys, 4, 3 * m)
  side = tf.floor(max_side * (0.6 + 0.4 * u[:, :m]))  # [n, m]
  along = tf.floor(tf.range(m, dtype=tf.float32) * slot + u[:, m : 2 * m] * (slot - side))
  across = tf.floor(u[:, 2 * m :] * (size - side))
  y = tf.where(stacked, along, across)
  x = tf.where(stacked, across, along)
  boxes = tf.cast(tf.stack([y, x, y + side, x + side], axis=-1), tf.int32)
  valid = tf.range(m)[None, :] < n[:, None]
  return {'num_objects': n, 'colours': colours, 'shapes': shapes, 'boxes': boxes, 'valid': valid}


@functools.cache
def shared_scene_fns(
  size: int, max_objects: int
) -> tuple[tf.types.experimental.PolymorphicFunction, ...]:
  """(sample, render): `sample_scene` (uint64 keys [n] -> scene) and `render_shapes`
  (scene -> uint8 image [n, size, size, 3]) as tf.functions, traced once per
  (size, max_objects) for the whole process.

  Every image task's generator calls them. Traced inline, the ~600 ops of a scene
  were traced again by each of the mixture's eight image tasks in the train input's
  one function (part of every start-up's input build); called, each task adds one
  call op and the graph holds each body once. The same ops run, so the same pixels.
  """
  keys_spec = tf.TensorSpec([None], tf.uint64)

  @tf.function(input_signature=[keys_spec], autograph=False)
  def sample(keys: tf.Tensor) -> dict[str, tf.Tensor]:
    return sample_scene(keys, size, max_objects)

  m = max_objects
  scene_spec = {
    'num_objects': tf.TensorSpec([None], tf.int32),
    'colours': tf.TensorSpec([None, m], tf.int32),
    'shapes': tf.TensorSpec([None, m], tf.int32),
    'boxes': tf.TensorSpec([None, m, 4], tf.int32),
    'valid': tf.TensorSpec([None, m], tf.bool),
  }

  @tf.function(input_signature=[scene_spec], autograph=False)
  def render(scene: dict[str, tf.Tensor]) -> tf.Tensor:
    return render_shapes(scene, size)

  return sample, render


def _rows(x: tf.Tensor) -> tf.Tensor:
  """[n, ...] -> [n, ..., 1] (tf.expand_dims: graph-mode `x[:, k, None]` can drop the new axes)."""
  return tf.expand_dims(x, -1)


def _spans(scene: dict[str, tf.Tensor], k: int, size: int) -> tuple[tf.Tensor, tf.Tensor]:
  """int32 [n, size] each: the columns [lo, hi) object k covers in each image row.

  A pixel (r, c) is inside when its centre (r + .5, c + .5) is: in the box for a
  square; within `half` of the box centre for a circle; in the box and
  |c + .5 - cx| <= (r + .5 - ymin) / 2 for a triangle (apex at the top middle).
  Each is an interval of columns per row, so the masks cost [n, size] ops, not
  [n, size, size] ones. Rows the object misses (and unused slots) get lo = hi = 0.
  """
  centres = tf.range(size, dtype=tf.float32) + 0.5
  ymin, xmin, ymax, xmax = (_rows(tf.cast(scene['boxes'][:, k, i], tf.float32)) for i in range(4))
  cx, half = (xmin + xmax) / 2, (ymax - ymin) / 2
  in_rows = (centres >= ymin) & (centres < ymax)  # [n, S]
  left_sq = tf.square(half) - tf.square(centres - (ymin + ymax) / 2)  # circle: dx^2 <= this
  reach = tf.where(_rows(scene['shapes'][:, k]) == 0, tf.sqrt(tf.maximum(left_sq, 0.0)), 0.0)
  reach += tf.where(_rows(scene['shapes'][:, k]) == 2, (centres - ymin) / 2, 0.0)
  lo = tf.math.ceil(cx - 0.5 - reach)  # |c + .5 - cx| <= reach
  hi = tf.floor(cx - 0.5 + reach) + 1
  shape = _rows(scene['shapes'][:, k])
  lo = tf.where(shape == 1, xmin, tf.maximum(lo, xmin))
  hi = tf.where(shape == 1, xmax, tf.minimum(hi, xmax))
  rows = tf.where(shape == 0, left_sq >= 0, in_rows) & _rows(scene['valid'][:, k])
  return tf.cast(tf.where(rows, lo, 0.0), tf.int32), tf.cast(tf.where(rows, hi, 0.0), tf.int32)


def render_shapes(scene: dict[str, tf.Tensor], size: int) -> tf.Tensor:
  """uint8 [n, size, size, 3]: the scenes' shapes, hard edges (crisp colours).

  A colour index per pixel (0: background, 1 + colour: a shape; the objects never
  overlap), then one palette gather: four [n, size, size] ops per object slot.
  """
  palette = tf.constant([words.BACKGROUND_RGB, *(words.COLOUR_RGB[c] for c in words.COLOURS)])
  cols = tf.reshape(tf.range(size), [1, 1, size])
  index = tf.zeros([tf.shape(scene['boxes'])[0], size, size], tf.int32)
  for k in range(scene['boxes'].shape[1]):
    lo, hi = _spans(scene, k, size)
    inside = (cols >= _rows(lo)) & (cols < _rows(hi))  # [n, S, S]
    index = tf.where(inside, _rows(_rows(scene['colours'][:, k] + 1)), index)
  return tf.gather(tf.cast(palette, tf.uint8), index)


OCR_STYLES = ('plain', 'varied')
# 'varied': least difference of mean RGB level between text and background (before the
# per-channel tints are clipped to 0..255).
MIN_OCR_CONTRAST = 150
_OCR_TINT = 60  # 'varied': each channel deviates up to this much from its colour's level


def check_ocr_style(style: str) -> str:
  if style not in OCR_STYLES:
    raise errors.ConfigError(f'unknown OCR style {style!r}; valid: {", ".join(OCR_STYLES)}')
  return style


def font_px(size: int) -> int:
  """OCR font size for an image side: 3/8 of it (12 px at 32 px: 1.5 ViT patches of 8 px tall)."""
  return max(8, 3 * size // 8)


def ocr_font_sizes(size: int, style: str = 'plain') -> tuple[int, ...]:
  """Font sizes the OCR words are drawn at: `font_px(size)`, or for 'varied' every size
  within size / 16 of it (10-14 px at 32 px)."""
  spread = size // 16 if check_ocr_style(style) == 'varied' else 0
  return tuple(range(max(6, font_px(size) - spread), font_px(size) + spread + 1))


@functools.cache
def ocr_glyphs(size: int, style: str = 'plain') -> tuple[np.ndarray, np.ndarray]:
  """Rendered OCR words (PIL, once per image size and style; runs in the calling thread).

  Returns:
    masks: uint8 [P * num_words, Hm, Wm], ink coverage 0..255 of word w at font size p
      (index p * num_words + w; P = len(ocr_font_sizes)) drawn at the top-left corner
      (anti-aliased), the font shrunk until the word fits 90% of the side; Hm, Wm =
      the largest extents.
    extent: int32 [P * num_words, 2], (height, width) of each word's ink box.
  """
  rendered = []
  for start in ocr_font_sizes(size, style):
    for word in words.OCR_WORDS:
      px = start
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


def _ocr_colours(keys: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """'varied' (text, background) RGB, float32 [n, 3] each: levels MIN_OCR_CONTRAST or more
  apart, uniform over the pairs that allows, then a random tint per channel."""
  u = uniform(keys, 5, 8)
  background = 255.0 * u[:, 0]
  below = tf.maximum(background - MIN_OCR_CONTRAST, 0.0)  # room for darker text
  above = tf.maximum(255.0 - MIN_OCR_CONTRAST - background, 0.0)  # for lighter text
  t = u[:, 1] * (below + above)
  text = tf.where(t < below, t, background + MIN_OCR_CONTRAST + (t - below))

  def tinted(level: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
    offsets = 2.0 * _OCR_TINT * (v - tf.reduce_mean(v, axis=1, keepdims=True))
    return tf.clip_by_value(level[:, None] + offsets, 0.0, 255.0)

  return tinted(text, u[:, 2:5]), tinted(background, u[:, 5:8])


def sample_ocr(keys: tf.Tensor, size: int, style: str = 'plain') -> dict[str, tf.Tensor]:
  """n OCR scenes: word int32 [n], glyph int32 [n] (its index in `ocr_glyphs`), word_yx
  int32 [n, 2] (top-left); 'plain': text_rgb int32 [n] (index into TEXT_RGB); 'varied':
  text and background float32 [n, 3] RGB."""
  _, extent = ocr_glyphs(size, style)
  word = randint(keys, 0, 0, len(words.OCR_WORDS))
  glyph = word
  if style == 'varied':
    glyph += len(words.OCR_WORDS) * randint(keys, 4, 0, len(ocr_font_sizes(size, style)))
  hw = tf.gather(tf.constant(extent), glyph)  # [n, 2]
  y = randint(keys, 1, 0, tf.maximum(1, size - hw[:, 0]))
  x = randint(keys, 2, 0, tf.maximum(1, size - hw[:, 1]))
  out = {'word': word, 'glyph': glyph, 'word_yx': tf.stack([y, x], axis=1)}
  if style == 'varied':
    out['text'], out['background'] = _ocr_colours(keys)
  else:
    out['text_rgb'] = randint(keys, 3, 0, len(words.TEXT_RGB))
  return out


@functools.cache
def ocr_palette(size: int) -> np.ndarray:
  """uint8 [1 + words * text colours * Hm * Wm, 3]: entry 0 the background; then every
  glyph pixel of every word in every text colour, blended over the background ('plain')."""
  masks, _ = ocr_glyphs(size)
  m = masks.astype(np.float32)[:, None, :, :, None] / 255.0  # [W, 1, Hm, Wm, 1]
  rgb = np.array(words.TEXT_RGB, np.float32)[None, :, None, None, :]  # [1, T, 1, 1, 3]
  background = np.array(words.BACKGROUND_RGB, np.float32)
  blended = np.round(background * (1.0 - m) + rgb * m).astype(np.uint8).reshape(-1, 3)
  return np.concatenate([background.astype(np.uint8)[None], blended])


def _glyph_index(
  ocr: dict[str, tf.Tensor], size: int, tile: tf.Tensor, hm: int, wm: int
) -> tf.Tensor:
  """int32 [n, S, S]: 1 + the flat index of glyph pixel (r - y, c - x) of tile `tile` [n]
  (tiles of hm x wm pixels) at each image pixel (r, c), or 0 outside the glyph box."""
  dr = tf.range(size) - _rows(ocr['word_yx'][:, 0])  # [n, S]: glyph row of each image row
  dc = tf.range(size) - _rows(ocr['word_yx'][:, 1])  # [n, S]: glyph column of each column
  row_at = 1 + (_rows(tile) * hm + dr) * wm  # [n, S]
  inside = _rows((dr >= 0) & (dr < hm)) & tf.expand_dims((dc >= 0) & (dc < wm), 1)
  return tf.where(inside, _rows(row_at) + tf.expand_dims(dc, 1), 0)


def render_ocr(ocr: dict[str, tf.Tensor], size: int, style: str = 'plain') -> tf.Tensor:
  """uint8 [n, size, size, 3]: each word drawn in its scene's colours.

  'plain': black or white on the background, one gather from `ocr_palette` of an index
  per pixel (glyph pixel (r - y_i, c - x_i) of the word in its colour, or the
  background). 'varied': the glyph's coverage per pixel blends the scene's text colour
  over its background.
  """
  masks, _ = ocr_glyphs(size, style)
  hm, wm = masks.shape[1:]
  if style == 'plain':
    tile = ocr['glyph'] * len(words.TEXT_RGB) + ocr['text_rgb']  # [n]
    return tf.gather(tf.constant(ocr_palette(size)), _glyph_index(ocr, size, tile, hm, wm))
  coverage = np.concatenate([[0.0], masks.reshape(-1).astype(np.float32) / 255.0])
  m = tf.gather(tf.constant(coverage, tf.float32), _glyph_index(ocr, size, ocr['glyph'], hm, wm))
  m = m[..., None]  # [n, S, S, 1]
  text, background = (tf.reshape(ocr[k], [-1, 1, 1, 3]) for k in ('text', 'background'))
  return tf.cast(tf.round(background * (1.0 - m) + text * m), tf.uint8)
