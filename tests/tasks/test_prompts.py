"""Prompt templates, language / task validation, detection text format."""

import pytest
import tensorflow as tf

from pali_pax.tasks import prompts


def test_templates():
  assert prompts.caption_prompt('fr') == 'Generate caption in FR:'
  assert prompts.vqa_prompt('Wie viele?', 'de') == 'Answer in DE: Wie viele?'
  assert prompts.vqg_prompt('rouge', 'fr') == 'Generate a question in FR for: rouge'
  assert prompts.object_vqa_prompt('Is there a cat?', 'en') == 'Answer in EN: Is there a cat?'
  assert prompts.detection_prompt('zh') == 'Detect all objects in ZH:'
  assert prompts.ocr_prompt() == 'Generate OCR text:'
  assert (
    prompts.split_cap_prompt('en', 3, 'a red circle')
    == 'Generate the alt_text in EN at 3: a red circle <extra_id_0>'
  )
  assert prompts.prompt_for('xvqa', 'ar', text='q?') == 'Answer in AR: q?'
  assert prompts.prompt_for('span_corruption', 'ru', text='x <extra_id_0>') == 'x <extra_id_0>'


def test_tensor_arguments_give_the_same_text():
  q = tf.constant('Quelle forme ?')
  assert prompts.vqa_prompt(q, 'fr').numpy().decode() == prompts.vqa_prompt('Quelle forme ?', 'fr')
  got = prompts.split_cap_prompt('hi', tf.constant(2), tf.constant('धूसर पृष्ठभूमि'))
  assert got.numpy().decode() == prompts.split_cap_prompt('hi', 2, 'धूसर पृष्ठभूमि')
  # A per-example language tensor is upper-cased (not validated).
  assert prompts.caption_prompt(tf.constant('de')).numpy() == b'Generate caption in DE:'


def test_languages_cover_the_synthetic_eight_and_xm3600():
  for code in ('en', 'fr', 'de', 'es', 'zh', 'hi', 'ar', 'ru', 'ja', 'sw', 'quz'):
    assert prompts.check_language(code.upper()) == code
  assert len(prompts.LANGUAGES) >= 36


def test_unknown_language_lists_valid_codes():
  with pytest.raises(ValueError, match=r"Unknown language code 'xx'.*ar, bn, .*zh"):
    prompts.caption_prompt('xx')
  with pytest.raises(ValueError, match='valid codes'):
    prompts.vqa_prompt('q', 'klingon')


def test_unknown_task_lists_valid_tasks():
  with pytest.raises(
    ValueError, match=r"Unknown task 'summarize'; valid tasks: caption, detection"
  ):
    prompts.prompt_for('summarize', 'en')


def test_split_alt_text_words_and_characters():
  assert prompts.split_alt_text('a red circle on gray', 2) == ('a red', 'circle on gray')
  assert prompts.split_alt_text('灰色背景上的照片', 3) == ('灰色背', '景上的照片')
  assert prompts.split_alt_text('a b', 9) == ('a', 'b')  # clipped: both parts non-empty


def test_detection_format_quantises_and_parses_back():
  text = prompts.format_detection(
    [(0, 16, 32, 31.9), (3.2, 0, 10, 8)], ['circle', 'red square'], height=32, width=32
  )
  assert text == '0 500 999 996 circle ; 100 0 312 250 red square'
  assert prompts.parse_detection(text) == [
    ((0, 500, 999, 996), 'circle'),
    ((100, 0, 312, 250), 'red square'),
  ]
  assert prompts.parse_detection('12 x 4 ; 1 2 3 4 ok') == [
    ((1, 2, 3, 4), 'ok')
  ]  # malformed skipped
  with pytest.raises(ValueError, match='2 boxes but 1 labels'):
    prompts.format_detection([(0, 0, 1, 1)] * 2, ['a'], 4, 4)
