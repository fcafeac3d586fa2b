"""Synthetic generator: determinism, splits, and ground truth consistent with the picture."""

import numpy as np
import pytest

from pali_pax.tasks import metrics_detection, prompts, synthetic, synthetic_words

W = synthetic_words
SIZE = 32


def _examples(task, n=24, split='validation', size=SIZE):
  ds = synthetic.dataset(task, split, image_size=size, stop=n)
  return [synthetic.to_python(task, ex) for ex in ds.as_numpy_iterator()]


def test_deterministic_and_equal_to_the_dataset():
  a = synthetic.generate('caption', 'train', 5, SIZE)
  b = synthetic.generate('caption', 'train', 5, SIZE)
  assert (a.inputs, a.targets, a.objects) == (b.inputs, b.targets, b.objects)
  np.testing.assert_array_equal(a.image, b.image)
  c = _examples('caption', n=6, split='train')[5]
  assert (c.inputs, c.targets, c.objects) == (a.inputs, a.targets, a.objects)
  np.testing.assert_array_equal(c.image, a.image)


def test_splits_and_seeds_differ():
  def key(ex):
    return (ex.targets, ex.objects)

  train = [key(synthetic.generate('detection', 'train', i, SIZE)) for i in range(10)]
  val = [key(synthetic.generate('detection', 'validation', i, SIZE)) for i in range(10)]
  other = [key(synthetic.generate('detection', 'train', i, SIZE, seed=1)) for i in range(10)]
  assert train != val and train != other
  assert len(set(train)) == 10


def test_pixel_at_each_shape_centre_has_the_captioned_colour():
  for ex in _examples('caption'):
    assert 1 <= len(ex.objects) <= 2
    assert (
      len({o.colour for o in ex.objects}) == len({o.shape for o in ex.objects}) == len(ex.objects)
    )
    phrases = [W.noun_phrase(ex.lang, o.colour, o.shape) for o in ex.objects]
    for o in ex.objects:
      y, x = o.centre
      assert tuple(ex.image[y, x]) == W.COLOUR_RGB[o.colour]
    # The caption names the objects in reading order.
    positions = [ex.targets.index(p) for p in phrases]
    assert positions == sorted(positions), (ex.targets, phrases)
    assert ex.inputs == prompts.caption_prompt(ex.lang)
    # Background elsewhere: corners are never covered by two objects' colours at once.
    assert tuple(ex.image[0, 0]) in {W.BACKGROUND_RGB, *W.COLOUR_RGB.values()}


def _expected_qa(ex, q_lang, a_lang):
  """Every question about the scene in q_lang -> its answer in a_lang."""
  qt, at = W.table(q_lang), W.table(a_lang)
  qa = {qt.q_count: at.numbers[len(ex.objects) - 1]}
  for o in ex.objects:
    qa[qt.q_colour.format(shape_def=qt.shape_def[o.shape])] = at.colour[o.colour]
    qa[qt.q_shape.format(colour=W.object_colour(q_lang, o.colour))] = at.shape[o.shape]
  return qa


def test_vqa_answers_are_determined_by_the_scene():
  for ex in _examples('vqa'):
    question = ex.inputs.removeprefix(f'Answer in {ex.lang.upper()}: ')
    assert _expected_qa(ex, ex.lang, ex.lang)[question] == ex.targets


def test_cross_lingual_vqa_question_in_another_language():
  for ex in _examples('xvqa'):
    question = ex.inputs.removeprefix(f'Answer in {ex.lang.upper()}: ')
    q_langs = [lang for lang in W.LANGS if question in _expected_qa(ex, lang, ex.lang)]
    assert q_langs and ex.lang not in q_langs
    assert _expected_qa(ex, q_langs[0], ex.lang)[question] == ex.targets


def test_vqg_targets_are_questions_with_the_given_answer():
  for ex in _examples('vqg'):
    answer = ex.inputs.removeprefix(f'Generate a question in {ex.lang.upper()} for: ')
    assert _expected_qa(ex, ex.lang, ex.lang)[ex.targets] == answer


def test_object_vqa_presence():
  answers = set()
  for ex in _examples('object_vqa', n=40):
    t = W.table(ex.lang)
    present = {(o.colour, o.shape) for o in ex.objects}
    asked = [
      (c, s)
      for c in W.COLOURS
      for s in W.SHAPES
      if t.q_presence.format(np=W.noun_phrase(ex.lang, c, s)) in ex.inputs
    ]
    assert len(asked) == 1
    assert ex.targets == (t.yes if asked[0] in present else t.no)
    answers.add(ex.targets == t.yes)
  assert answers == {True, False}


def test_detection_boxes_match_the_objects():
  for ex in _examples('detection'):
    boxes, malformed = metrics_detection.parse_boxes(ex.targets)
    assert malformed == 0 and len(boxes) == len(ex.objects)
    for box, o in zip(boxes, ex.objects, strict=True):
      # Bins of 1000 per side, clipped to the last one (hand-computed, as PaLI writes boxes).
      assert (box.ymin, box.xmin, box.ymax, box.xmax) == tuple(
        min(999, 1000 * v // SIZE) for v in o.box
      )
      assert box.label == W.table(ex.lang).shape[o.shape].lower()  # the parser lowercases
      ymin, xmin, ymax, xmax = o.box
      assert 0 <= ymin < ymax <= SIZE and 0 <= xmin < xmax <= SIZE


def test_ocr_renders_the_word():
  for ex in _examples('ocr', n=8):
    assert ex.targets == ex.word and ex.word in W.OCR_WORDS
    assert ex.inputs == prompts.ocr_prompt()
    ink = np.any(ex.image != np.array(W.BACKGROUND_RGB, np.uint8), axis=-1)
    assert ink.sum() > 10


def test_split_cap_parts_rebuild_the_alt_text():
  for ex in _examples('split_cap'):
    head = f'Generate the alt_text in {ex.lang.upper()} at '
    assert ex.inputs.startswith(head) and ex.inputs.endswith(' <extra_id_0>')
    pos, first = ex.inputs[len(head) : -len(' <extra_id_0>')].split(': ', 1)
    caption = W.table(ex.lang).and_.format(
      a=W.noun_phrase(ex.lang, ex.objects[0].colour, ex.objects[0].shape),
      b=W.noun_phrase(ex.lang, ex.objects[-1].colour, ex.objects[-1].shape),
    )
    if len(ex.objects) == 1:
      caption = W.noun_phrase(ex.lang, ex.objects[0].colour, ex.objects[0].shape)
    alt = W.table(ex.lang).alt_text.format(objs=caption)
    units, sep = (alt.split(' '), ' ') if ' ' in alt else (list(alt), '')
    assert 1 <= int(pos) < len(units)  # both parts non-empty
    assert (first, ex.targets) == (sep.join(units[: int(pos)]), sep.join(units[int(pos) :]))


def test_span_corruption_text_is_text_only():
  ex = synthetic.generate('span_corruption', 'train', 0, SIZE)
  assert ex.image is None and ex.targets == '' and len(ex.inputs.split()) > 5


def test_languages_image_sizes_and_max_objects():
  langs = {ex.lang for ex in _examples('caption', n=80)}
  assert langs == set(W.LANGS)
  for size in (16, 64):
    assert synthetic.generate('vqa', 'train', 0, size).image.shape == (size, size, 3)
  ds = synthetic.dataset('caption', 'train', SIZE, max_objects=3, stop=40)
  examples = [synthetic.to_python('caption', ex) for ex in ds.as_numpy_iterator()]
  assert {len(ex.objects) for ex in examples} == {1, 2, 3}
  for ex in examples:
    for o in ex.objects:
      assert tuple(ex.image[o.centre]) == W.COLOUR_RGB[o.colour]


def test_errors_list_valid_values():
  with pytest.raises(ValueError, match='valid tasks: caption, vqa'):
    synthetic.generate('poetry', 'train', 0)
  with pytest.raises(ValueError, match='valid splits: train, validation'):
    synthetic.generate('vqa', 'test', 0)
  with pytest.raises(ValueError, match='synthetic languages: en, fr'):
    W.table('ja')
