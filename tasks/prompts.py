"""Every prompt template of the PaLI task mixture, per task and language.

PaLI (Chen et al. 2022) casts all tasks as "image-and-text to text": the encoder
reads the image tokens plus an English prompt naming the task and the output
language by its code, and the decoder writes the answer. The templates:

| task | inputs (prompt) | targets |
|---|---|---|
| split_cap | `Generate the alt_text in EN at 3: a red circle <extra_id_0>` | rest of the alt-text |
| caption | `Generate caption in FR:` | the caption |
| ocr | `Generate OCR text:` | the text in the image |
| vqa / xvqa | `Answer in DE: <question, any language>` | the answer in DE |
| vqg | `Generate a question in ES for: <answer>` | the question |
| object_vqa | `Answer in EN: Is there a red circle in the image?` | yes / no |
| detection | `Detect all objects in ZH:` | `ymin xmin ymax xmax label ; ...` |
| span_corruption | text with `<extra_id_k>` sentinels (no prompt) | the dropped spans |

The detection target text (boxes quantised to 0..999, objects separated by
` ; `) is defined and parsed in `metrics_detection.py`; the tasks write it
(synthetic.py in TF).

Free-text arguments (questions, answers, alt-text parts) may be Python strings
or scalar `tf.string` tensors (inside seqio preprocessors). A language given as
a Python string is validated (ValueError listing the codes); a `tf.string`
language (per-example, e.g. from a TFRecord 'lang' field) is only upper-cased.
Span corruption itself works on token ids and lives in `span_corruption.py`.
"""

import tensorflow as tf

from pali_pax.core import errors

# Language codes usable in prompts (code -> English name). The 36 languages of
# Crossmodal-3600 (which include the 8 of the synthetic tasks); PaLI's ~100
# WebLI languages are added by extending this table.
LANGUAGES: dict[str, str] = {
  'ar': 'Arabic',
  'bn': 'Bengali',
  'cs': 'Czech',
  'da': 'Danish',
  'de': 'German',
  'el': 'Greek',
  'en': 'English',
  'es': 'Spanish',
  'fa': 'Persian',
  'fi': 'Finnish',
  'fil': 'Filipino',
  'fr': 'French',
  'he': 'Hebrew',
  'hi': 'Hindi',
  'hr': 'Croatian',
  'hu': 'Hungarian',
  'id': 'Indonesian',
  'it': 'Italian',
  'ja': 'Japanese',
  'ko': 'Korean',
  'mi': 'Maori',
  'nl': 'Dutch',
  'no': 'Norwegian',
  'pl': 'Polish',
  'pt': 'Portuguese',
  'quz': 'Cusco Quechua',
  'ro': 'Romanian',
  'ru': 'Russian',
  'sv': 'Swedish',
  'sw': 'Swahili',
  'te': 'Telugu',
  'th': 'Thai',
  'tr': 'Turkish',
  'uk': 'Ukrainian',
  'vi': 'Vietnamese',
  'zh': 'Chinese',
}

SENTINEL_0 = '<extra_id_0>'

Text = str | tf.Tensor


def check_language(lang: str) -> str:
  """Returns the normalised (lower-case) code; ValueError listing valid codes."""
  code = str(lang).strip().lower()
  if code not in LANGUAGES:
    raise errors.InputValidationError(
      f'Unknown language code {lang!r}; valid codes: {", ".join(sorted(LANGUAGES))}'
    )
  return code


def lang_tag(lang: Text) -> Text:
  """The language as written in prompts: the upper-case code, e.g. 'EN'."""
  if isinstance(lang, tf.Tensor):
    return tf.strings.upper(tf.strings.strip(lang))
  return check_language(lang).upper()


def _join(*parts: Text) -> Text:
  """Concatenates strings, staying in Python unless some part is a tensor."""
  if any(isinstance(p, tf.Tensor) for p in parts):
    return tf.strings.join([tf.convert_to_tensor(p, tf.string) for p in parts])
  return ''.join(parts)


def caption_prompt(lang: Text) -> Text:
  """Captioning in `lang`: 'Generate caption in FR:'."""
  return _join('Generate caption in ', lang_tag(lang), ':')


def split_cap_prompt(lang: Text, pos: int | Text, first_part: Text) -> Text:
  """Split-captioning of alt-text: the model continues `first_part`.

  Args:
    lang: language code of the alt-text.
    pos: where the alt-text was split, in words (characters for languages
      written without spaces); the length of `first_part`.
    first_part: the alt-text before the split point.
  """
  if isinstance(pos, tf.Tensor):
    pos_text = pos if pos.dtype == tf.string else tf.strings.as_string(pos)
  else:
    pos_text = pos if isinstance(pos, str) else str(int(pos))
  return _join(
    'Generate the alt_text in ',
    lang_tag(lang),
    ' at ',
    pos_text,
    ': ',
    first_part,
    ' ' + SENTINEL_0,
  )


def ocr_prompt() -> str:
  """OCR: the target is all text written in the image."""
  return 'Generate OCR text:'


def vqa_prompt(question: Text, lang: Text) -> Text:
  """(Cross-lingual) VQA: answer `question` (any language) in `lang`."""
  return _join('Answer in ', lang_tag(lang), ': ', question)


def vqg_prompt(answer: Text, lang: Text) -> Text:
  """Visual question generation: write a question in `lang` whose answer is `answer`."""
  return _join('Generate a question in ', lang_tag(lang), ' for: ', answer)


def object_vqa_prompt(question: Text, lang: Text) -> Text:
  """Object-aware VQA (presence / counting questions about objects): as VQA."""
  return vqa_prompt(question, lang)


def detection_prompt(lang: Text) -> Text:
  """Object detection written as text, labels in `lang`."""
  return _join('Detect all objects in ', lang_tag(lang), ':')
