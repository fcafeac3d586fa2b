"""Validated edges: Predictor inputs rejected before any compute, naming the argument."""

import numpy as np
import pytest

from pali_pax import validation
from pali_pax.core import errors
from pali_pax.inference import Predictor
from tests.paths import MT5_HF

V = 2100


@pytest.fixture(scope='module')
def predictor(tiny_predictor):
  """vocab-2100 mT5 + ViT tiny/8 at 32 px; nothing here compiles (all inputs are rejected)."""
  return tiny_predictor


IMAGES = np.zeros((1, 32, 32, 3), np.float32)


@pytest.mark.parametrize(
  ('images', 'match'),
  [
    (np.full((1, 32, 32, 3), np.nan, np.float32), r'images hold 3072 NaN/inf value\(s\)'),
    (np.where(np.arange(3) == 1, np.inf, 0.0) * np.ones((1, 32, 32, 3)), 'hold 1024 NaN/inf'),
    (np.zeros((0, 32, 32, 3), np.float32), 'batch size 0'),
    (np.zeros((1, 32, 32, 3), bool), 'dtype bool'),
    (np.zeros((1, 32, 32, 3), np.int64), 'dtype int64'),
    (np.zeros((1, 32, 32, 3), complex), 'dtype complex'),
    (np.full((1, 32, 32, 3), 'a'), 'dtype <U1'),
    ([[[[0, 0, 0]]], [[[0, 0]]]], 'not a rectangular array'),
    (np.full((1, 32, 32, 3), 2.0, np.float32), r'\[-1, 1\].*got \[2, 2\]'),
    (np.zeros((1, 28, 28, 3), np.float32), '32x32'),
  ],
)
def test_bad_images(predictor, images, match):
  with pytest.raises(errors.InputValidationError, match=match):
    predictor.image_features(images)
  with pytest.raises(errors.InputValidationError, match='images'):
    predictor.generate_ids(np.array([[5, 1]]), images=images)


@pytest.mark.parametrize(
  ('ids', 'match'),
  [
    (np.array([[1.9, 1.0]]), 'input_ids must be integer token ids, got dtype float64'),
    (np.array([[np.nan, 1.0]]), 'dtype float64'),
    (np.zeros((0, 3), np.int32), 'input_ids has batch size 0'),
    ([[]], r'input_ids has no tokens|dtype float64'),
    (np.array([[0, 0, 0]]), 'input_ids row 0 is empty'),
    (np.array([[5, 1], [0, 0]]), 'input_ids row 1 is empty'),
    (np.array([[V, 1]]), r'outside \[0, 2100\)'),
    (np.array([[-3, 1]]), 'outside'),
    (np.array([5, 1]), r'\[B, T\]'),
    (np.array([['a', 'b']]), 'dtype <U1'),
  ],
)
def test_bad_token_ids(predictor, ids, match):
  with pytest.raises(errors.InputValidationError, match=match):
    predictor.generate_ids(ids)


def test_bad_decoder_ids_and_masks(predictor):
  ids = np.array([[5, 6, 1]])
  with pytest.raises(errors.InputValidationError, match='decoder ids must be integer'):
    predictor.text_logits(ids, np.array([[0.0, 4.5]]))
  with pytest.raises(errors.InputValidationError, match=r'input_mask has shape \(1, 2\).*\(1, 3\)'):
    predictor.generate_ids(ids, input_mask=np.ones((1, 2)))
  with pytest.raises(errors.InputValidationError, match='only 0 and 1.*nan'):
    predictor.generate_ids(ids, input_mask=np.array([[1, np.nan, 1]]))
  with pytest.raises(errors.InputValidationError, match='only 0 and 1'):
    predictor.generate_ids(ids, input_mask=np.array([[1, 2, 1]]))
  with pytest.raises(errors.InputValidationError, match='input_ids row 0 is empty'):
    predictor.generate_ids(ids, input_mask=np.zeros((1, 3), bool))


@pytest.mark.parametrize(
  ('kwargs', 'match'),
  [
    ({'beam_size': 0}, 'beam_size must be >= 1, got 0'),
    ({'beam_size': -2}, 'beam_size must be >= 1, got -2'),
    ({'beam_size': 2.5}, 'beam_size must be an integer'),
    ({'beam_size': True}, 'beam_size must be an integer'),
    ({'max_decode_steps': 0}, 'max_decode_steps must be >= 1'),
    ({'max_decode_steps': '8'}, 'max_decode_steps must be an integer'),
  ],
)
def test_bad_decoding_arguments(predictor, kwargs, match):
  with pytest.raises(errors.InputValidationError, match=match):
    predictor.generate_ids(np.array([[5, 1]]), **kwargs)
  with pytest.raises(errors.InputValidationError, match=match):
    predictor.generate(IMAGES, ['Generate caption in en:'], **kwargs)


@pytest.mark.parametrize(
  ('prompts', 'match'),
  [
    ('Generate caption in en:', 'prompts must be a list of strings, got str'),
    ([], 'prompts is empty'),
    ([''], r'prompts\[0\] is empty'),
    (['   '], r'prompts\[0\] is empty'),
    ([None], r'prompts\[0\] must be a string, got NoneType'),
    (['Generate caption in xx:'], r"prompts\[0\].*unknown language code 'xx'"),
    (['Answer in klingon: colour?'], "unknown language code 'klingon'"),
    (['Generate the alt_text in QQ at 3: a'], "unknown language code 'QQ'"),
    (['Detect all objects in zz:'], "unknown language code 'zz'"),
    (['Generate a question in yy for: red'], "unknown language code 'yy'"),
    (['red ' * 5000], r'prompt 0 has \d+ tokens, more than max_input_len=512'),
  ],
)
def test_bad_prompts(predictor, prompts, match):
  with pytest.raises(errors.InputValidationError, match=match):
    predictor.generate(IMAGES, prompts)
  with pytest.raises(errors.InputValidationError, match=match):
    predictor.score(IMAGES, prompts, ['x'])


def test_prompt_language_checks_only_task_prompts():
  assert validation.check_prompts(['Answer in EN: what?', 'Describe this', 'Generate OCR text:'])
  assert validation.check_prompts(['answer in fil: ano?']) == ['answer in fil: ano?']


def test_long_prompt_limit_is_per_predictor(predictor):
  ids = np.full((1, 40), 7)
  predictor.max_input_len = 39
  try:
    with pytest.raises(errors.InputValidationError, match='40 tokens, more than max_input_len=39'):
      predictor.generate_ids(ids)
    # Trailing padding does not count: 39 real tokens then pads pass validation.
    ids[0, 39] = 0
    assert validation.check_prompt_ids(ids, None, V, 39).shape == (1, 40)
  finally:
    del predictor.max_input_len


def test_score_targets_and_counts(predictor):
  with pytest.raises(errors.InputValidationError, match=r'targets\[0\] must be a string'):
    predictor.score(IMAGES, ['Answer in en: a?'], [3])
  with pytest.raises(errors.InputValidationError, match='1 prompts but 2 targets'):
    predictor.score(IMAGES, ['Answer in en: a?'], ['x', 'y'])


def test_text_only_predictor_names_its_limits():
  p = Predictor.from_components(mt5=MT5_HF)
  with pytest.raises(errors.InputValidationError, match='no ViT'):
    p.generate_ids(np.array([[5, 1]]), images=np.zeros((1, 28, 28, 3), np.float32))
  with pytest.raises(errors.InputValidationError, match='no vocabulary'):
    p.generate(None, ['hello'])


@pytest.mark.parametrize(
  ('ici', 'dcn', 'devices', 'match'),
  [
    (
      (1, 2, 4),
      None,
      1,
      r'ICI_MESH_SHAPE=\[1, 2, 4\] x DCN_MESH_SHAPE=None needs 8 devices.*has 1',
    ),
    ((1, 2, 1), (1, 2, 1), 8, r'needs 4 devices, but this job has 8'),
    ((1, 2), None, 2, r'ICI_MESH_SHAPE=\(1, 2\) must be 3 positive integers'),
    ((1, 0, 1), None, 1, 'ICI_MESH_SHAPE'),
    ((1, 1, 1), (1, 1.5, 1), 1, r'DCN_MESH_SHAPE=\(1, 1.5, 1\) must be 3 positive'),
    (None, None, 1, 'ICI_MESH_SHAPE=None'),
  ],
)
def test_mesh_errors_name_the_attribute(ici, dcn, devices, match):
  with pytest.raises(errors.ConfigError, match=match):
    validation.check_mesh(ici, dcn, devices)


def test_mesh_that_fits_passes_and_one_device_more_or_less_does_not():
  # Any sequence of ints (numpy's too) whose product, ICI x DCN, is the device count.
  assert validation.check_mesh((1, 2, 4), None, 8) is None
  assert validation.check_mesh([1, 2, 1], np.array([1, 2, 1]), 4) is None
  for devices in (3, 5):
    with pytest.raises(errors.ConfigError, match=f'needs 4 devices, but this job has {devices}'):
      validation.check_mesh([1, 2, 1], [1, 2, 1], devices)


def test_valid_inputs_come_back_normalised():
  floats = np.linspace(-1, 1, 2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
  checked = validation.check_images(floats, 4)
  assert checked.dtype == np.float64 and np.array_equal(checked, floats)  # dtype kept
  pixels = validation.check_images(np.full((1, 4, 4, 3), 255, np.uint8), 4)
  assert pixels.dtype == np.uint8 and pixels.max() == 255  # uint8 stays [0, 255], not rescaled
  with pytest.raises(errors.InputValidationError, match='images must be uint8.*dtype int64'):
    validation.check_images(np.full((1, 4, 4, 3), 255, np.int64), 4)
  ids = validation.check_token_ids([[5, 9, 1]], 'input_ids', V)
  assert ids.dtype == np.int32 and ids.tolist() == [[5, 9, 1]]
  # Masked positions become padding (id 0); the mask comes back as bools.
  masked = validation.check_prompt_ids(np.array([[5, 9, 1]], np.int64), [[1, 0, 1]], V)
  assert masked.dtype == np.int32 and masked.tolist() == [[5, 0, 1]]
  assert validation.check_input_mask([[1.0, 0.0]], (1, 2)).tolist() == [[True, False]]
  has_image = validation.check_has_image([True, False], 2, images_given=True)
  assert has_image.dtype == np.float32 and has_image.tolist() == [1.0, 0.0]
  with pytest.raises(errors.InputValidationError, match='has_image marks rows with an image'):
    validation.check_has_image([1, 0], 2, images_given=False)
  steps, beam = validation.check_decoding(np.int64(8), 2)
  assert (steps, beam) == (8, 2) and type(steps) is int and type(beam) is int
  texts = validation.check_texts(('a', ''), 'targets', allow_empty=True)
  assert texts == ['a', ''] and isinstance(texts, list)
  with pytest.raises(errors.InputValidationError, match=r'targets\[1\] is empty'):
    validation.check_texts(('a', ''), 'targets')
