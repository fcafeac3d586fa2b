"""The batched synthetic generator: per-example determinism in any batch, the counter-hash
draws, the renderer against the shapes' definition, and the batched features against the
task's own seqio preprocessors (the streamed step input)."""

import numpy as np
import pytest
import tensorflow as tf

from pali_pax.core import errors
from pali_pax.tasks import feature_converter, step_input, synthetic, synthetic_tasks
from pali_pax.tasks import synthetic_scene as scene_lib
from pali_pax.tasks import synthetic_words as W

SIZE = 32


def _rows(task, indices, **kw):
  out = synthetic.batch_fn(task, 'train', SIZE, **kw)(tf.constant(indices, tf.int64))
  return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize(
  'task,style',
  [('detection', 'plain'), ('ocr', 'plain'), ('ocr', 'varied'), ('split_cap', 'plain')],
)
def test_an_example_is_the_same_in_any_batch_and_alone(task, style):
  a = _rows(task, [5, 17, 3, 40], ocr_style=style)
  b = _rows(task, [17, 99, 5], ocr_style=style)
  one = synthetic.example_fn(task, 'train', SIZE, ocr_style=style)
  alone = {k: v.numpy() for k, v in one(17).items()}
  for key in a:
    np.testing.assert_array_equal(a[key][1], b[key][0])  # index 17
    np.testing.assert_array_equal(a[key][0], b[key][2])  # index 5
    np.testing.assert_array_equal(a[key][1], alone[key])
  assert len({a['targets'][i] for i in range(4)}) > 1  # rows are not copies of one draw


def test_shapes_and_dtypes_of_a_batch():
  for task in ('caption', 'ocr', 'span_corruption'):
    out = _rows(task, range(6), max_objects=3)
    assert out['image'].shape == (6, SIZE, SIZE, 3) and out['image'].dtype == np.uint8
    assert out['objects'].shape == (6, 3, 7) and out['objects'].dtype == np.int32
    assert out['word'].shape == (6,) and out['word'].dtype == np.int32
    for key in ('inputs', 'targets', 'lang'):
      assert out[key].shape == (6,) and out[key].dtype == object
  empty = _rows('vqa', np.zeros([0], np.int64))
  assert empty['image'].shape == (0, SIZE, SIZE, 3) and empty['inputs'].shape == (0,)


def test_counter_hash_draws_are_uniform_and_in_range():
  keys = scene_lib.example_keys(3, tf.range(20_000, dtype=tf.int64))
  u = scene_lib.uniform(keys, 0, 2).numpy()
  assert 0.0 <= u.min() and u.max() < 1.0
  assert abs(u.mean() - 0.5) < 0.01 and abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03
  hi = tf.constant(np.arange(20_000) % 5 + 1, tf.int32)  # a bound per row
  r = scene_lib.randint(keys, 1, 0, hi).numpy()
  assert np.all((0 <= r) & (r < hi.numpy()))
  counts = np.bincount(scene_lib.randint(keys, 2, 0, 3).numpy(), minlength=3)
  np.testing.assert_array_less(np.abs(counts - 20_000 / 3), 5 * np.sqrt(20_000 / 3))
  perm = scene_lib.permutation(keys[:6000], 3, 5).numpy()
  assert np.all(np.sort(perm, axis=1) == np.arange(5))
  _, orders = np.unique(perm, axis=0, return_counts=True)
  assert len(orders) == 120 and orders.min() > 20  # all 5! orders, ~50 each
  other = scene_lib.example_keys(4, tf.range(20_000, dtype=tf.int64))  # another stream
  assert np.mean(scene_lib.randint(other, 2, 0, 3).numpy() != r % 3) > 0.5


def _reference_masks(scene, i, size):
  """The shapes' definition per pixel centre (numpy), as the per-example renderer drew them."""
  yy, xx = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing='ij')
  img = np.broadcast_to(np.array(W.BACKGROUND_RGB, np.uint8), (size, size, 3)).copy()
  for k in range(scene['boxes'].shape[1]):
    if not scene['valid'][i, k]:
      continue
    ymin, xmin, ymax, xmax = scene['boxes'][i, k].astype(np.float64)
    cy, cx, half = (ymin + ymax) / 2, (xmin + xmax) / 2, (ymax - ymin) / 2
    box = (yy >= ymin) & (yy < ymax) & (xx >= xmin) & (xx < xmax)
    mask = [
      (yy - cy) ** 2 + (xx - cx) ** 2 <= half**2,
      box,
      box & (np.abs(xx - cx) <= (yy - ymin) / 2),
    ][scene['shapes'][i, k]]
    img[mask] = W.COLOUR_RGB[W.COLOURS[scene['colours'][i, k]]]
  return img


@pytest.mark.parametrize('size', [16, 48])
def test_rendered_shapes_follow_their_definition_pixel_for_pixel(size):
  keys = scene_lib.example_keys(size, tf.range(40, dtype=tf.int64))
  scene = scene_lib.sample_scene(keys, size, 3)
  images = scene_lib.render_shapes(scene, size).numpy()
  scene = {k: v.numpy() for k, v in scene.items()}
  assert set(scene['shapes'][scene['valid']]) == {0, 1, 2}
  for i in range(40):
    np.testing.assert_array_equal(images[i], _reference_masks(scene, i, size))


def test_ocr_image_is_the_glyph_at_its_place():
  out = _rows('ocr', range(12))
  masks, extent = scene_lib.ocr_glyphs(SIZE)
  bg = np.array(W.BACKGROUND_RGB)
  for img, word in zip(out['image'], out['word'], strict=True):
    ink = np.argwhere(np.any(img != bg, axis=-1))
    (y0, x0), (y1, x1) = ink.min(0), ink.max(0)
    glyph = np.argwhere(masks[word] > 0)
    assert (y1 - y0, x1 - x0) == tuple(glyph.max(0) - glyph.min(0))  # the word's ink box
    assert y1 < SIZE and x1 < SIZE and all(extent[word] <= SIZE)


@pytest.fixture(scope='module')
def two_task_mixture():
  rates = {t: 0.0 for t in synthetic.TASKS}
  rates.update(ocr=1.0, span_corruption=1.0)  # an image task and the text-only one
  return synthetic_tasks.register_synthetic_tasks(image_size=16, suffix='_batchtest', rates=rates)


def test_batched_features_equal_the_tasks_own_preprocessors(two_task_mixture):
  lengths = {'inputs': 12, 'targets': 6}  # short: cuts long texts before EOS too
  ks = np.array([7, 3, 1000, 8, 9, 2, 11, 5], np.int64)
  assert step_input.batched(two_task_mixture)
  got = step_input.features_batch_fn(two_task_mixture, 'train', 4, lengths)(tf.constant(ks))
  streamed = step_input.examples_dataset(two_task_mixture, 'train', 4, ks, lengths)
  want = next(
    feature_converter.PaliFeatureConverter()(streamed, lengths).batch(8).as_numpy_iterator()
  )
  converted = feature_converter.PaliFeatureConverter().convert_batch(got)
  assert 0 < got['has_image'].numpy().sum() < 8  # both tasks drawn
  assert set(converted) == set(want)
  for key in want:
    np.testing.assert_array_equal(converted[key].numpy(), want[key], err_msg=key)


def test_the_train_inputs_function_holds_one_tokenizer_and_one_scene_body():
  # Start-up cost of the train input is tracing and instantiating this one function:
  # each image task calls the shared scene functions instead of tracing its own copy.
  name = synthetic_tasks.register_synthetic_tasks(image_size=SIZE, suffix='_graph_test')
  fn = step_input.features_batch_fn(name, 'train', 0, {'inputs': 24, 'targets': 16})
  graph = (
    tf.function(fn, autograph=False)
    .get_concrete_function(tf.TensorSpec([None], tf.int64))
    .graph.as_graph_def()
  )
  nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
  assert sum(n.op == 'SentencepieceOp' for n in nodes) == 1
  image_tasks = len(synthetic.TASKS) - len(synthetic.TEXT_ONLY_TASKS) - 1  # not OCR
  sample = [f.signature.name for f in graph.library.function if '_sample_' in f.signature.name]
  assert len(sample) == 1  # one body...
  calls = [n for n in nodes if n.op in ('PartitionedCall', 'StatefulPartitionedCall')]
  called = [n.attr['f'].func.name for n in calls]
  assert called.count(sample[0]) == image_tasks + 1  # ...called by every scene task


def test_varied_ocr_blends_the_glyph_in_its_colours_at_its_size():
  keys = scene_lib.example_keys(3, tf.range(200, dtype=tf.int64))
  ocr = scene_lib.sample_ocr(keys, SIZE, 'varied')
  images = scene_lib.render_ocr(ocr, SIZE, 'varied').numpy().astype(np.float64)
  ocr = {k: v.numpy() for k, v in ocr.items()}
  masks, extent = scene_lib.ocr_glyphs(SIZE, 'varied')
  n_words = len(W.OCR_WORDS)
  assert masks.shape[0] == len(scene_lib.ocr_font_sizes(SIZE, 'varied')) * n_words
  assert scene_lib.ocr_font_sizes(SIZE, 'varied') == (10, 11, 12, 13, 14)
  np.testing.assert_array_equal(ocr['glyph'] % n_words, ocr['word'])
  assert len(set(ocr['glyph'] // n_words)) == 5  # every font size drawn
  for i in range(200):  # the reference: numpy's blend of the glyph placed at word_yx
    m = np.zeros([SIZE, SIZE])
    (y, x), g = ocr['word_yx'][i], ocr['glyph'][i]
    h, w = min(masks.shape[1], SIZE - y), min(masks.shape[2], SIZE - x)
    m[y : y + h, x : x + w] = masks[g, :h, :w] / 255.0
    assert y + extent[g][0] <= SIZE and x + extent[g][1] <= SIZE  # the ink fits
    want = ocr['background'][i] * (1 - m[..., None]) + ocr['text'][i] * m[..., None]
    np.testing.assert_allclose(images[i], want, atol=0.5 + 1e-3)  # uint8 rounding
  levels = np.abs(ocr['text'].mean(1) - ocr['background'].mean(1))
  # Levels MIN_OCR_CONTRAST apart, tinted around them: clipping at 0 / 255 only ever
  # moves a channel back towards the other colour by at most the tint's reach.
  assert levels.min() >= scene_lib.MIN_OCR_CONTRAST - 2 * 60
  assert np.median(levels) >= scene_lib.MIN_OCR_CONTRAST
  assert len({tuple(np.round(c)) for c in ocr['background']}) > 150  # not a few fixed colours


def test_an_ocr_style_is_checked_and_plain_is_the_default():
  plain = _rows('ocr', [4, 9])
  np.testing.assert_array_equal(plain['image'], _rows('ocr', [4, 9], ocr_style='plain')['image'])
  varied = _rows('ocr', [4, 9], ocr_style='varied')
  assert (plain['word'] == varied['word']).all()  # the same draws, drawn differently
  assert not np.array_equal(plain['image'], varied['image'])
  with pytest.raises(errors.ConfigError, match='unknown OCR style'):
    synthetic.batch_fn('ocr', 'train', SIZE, ocr_style='neon')
  with pytest.raises(errors.ConfigError, match='unknown OCR style'):
    synthetic_tasks.register_synthetic_tasks(image_size=SIZE, suffix='_neon', ocr_style='neon')
