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

Box coordinates in detection targets are quantised to integers 0..999
(`floor(1000 * pixel / size)`), objects separated by ` ; `.

Free-text arguments (questions, answers, alt-text parts) may be Python strings
or scalar `tf.string` tensors (inside seqio preprocessors). A language given as
a Python string is validated (ValueError listing the codes); a `tf.string`
language (per-example, e.g. from a TFRecord 'lang' field) is only upper-cased.
Span corruption itself works on token ids and lives in `span_corruption.py`.
"""

import math
import re
from collections.abc import Sequence

import tensorflow as tf

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

# Every task whose prompt this module owns.
TASKS: tuple[str, ...] = (
  'caption',
  'detection',
  'object_vqa',
  'ocr',
  'span_corruption',
  'split_cap',
  'vqa',
  'vqg',
  'xvqa',
)

NUM_BOX_BINS = 1000  # detection coordinates are integers in [0, NUM_BOX_BINS - 1]
OBJECT_SEPARATOR = ' ; '
SENTINEL_0 = '<extra_id_0>'

Text = str | tf.Tensor


def check_language(lang: str) -> str:
  """Returns the normalised (lower-case) code; ValueError listing valid codes."""
  code = str(lang).strip().lower()
  if code not in LANGUAGES:
    raise ValueError(f'Unknown language code {lang!r}; valid codes: {", ".join(sorted(LANGUAGES))}')
  return code


def check_task(task: str) -> str:
  """Returns `task` if it is a known task; ValueError listing the valid ones."""
  if task not in TASKS:
    raise ValueError(f'Unknown task {task!r}; valid tasks: {", ".join(TASKS)}')
  return task


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


def prompt_for(task: str, lang: str = 'en', text: Text = '', pos: int = 0) -> Text:
  """Generic dispatch: the prompt of `task` (ValueError for unknown tasks/languages).

  Args:
    task: one of TASKS.
    lang: output language code.
    text: the free-text part (question for vqa/xvqa/object_vqa, answer for vqg,
      alt-text first part for split_cap, the corrupted text for span_corruption).
    pos: split position for split_cap.
  """
  check_task(task)
  check_language(lang)
  if task == 'caption':
    return caption_prompt(lang)
  if task == 'split_cap':
    return split_cap_prompt(lang, pos, text)
  if task == 'ocr':
    return ocr_prompt()
  if task in ('vqa', 'xvqa'):
    return vqa_prompt(text, lang)
  if task == 'object_vqa':
    return object_vqa_prompt(text, lang)
  if task == 'vqg':
    return vqg_prompt(text, lang)
  if task == 'detection':
    return detection_prompt(lang)
  return text  # span_corruption: the corrupted text is the whole input.


def split_alt_text(text: str, pos: int) -> tuple[str, str]:
  """Splits alt-text after `pos` words (characters if it has no spaces).

  Returns:
    (first_part, rest); `pos` is clipped to [1, n - 1] so both are non-empty
    when the text has at least two units.
  """
  words = text.split(' ')
  sep = ' '
  if len(words) < 2:  # Chinese / Japanese / Thai: split by characters.
    words, sep = list(text), ''
  pos = max(1, min(int(pos), len(words) - 1))
  return sep.join(words[:pos]), sep.join(words[pos:])


def quantize_coord(value: float, size: float) -> int:
  """A pixel coordinate in [0, size] -> bin in [0, NUM_BOX_BINS - 1]."""
  return min(NUM_BOX_BINS - 1, max(0, math.floor(NUM_BOX_BINS * value / size)))


def format_detection(
  boxes: Sequence[Sequence[float]], labels: Sequence[str], height: float, width: float
) -> str:
  """Detection target text.

  Args:
    boxes: per object (ymin, xmin, ymax, xmax) in pixels.
    labels: per object label text (in the prompt's language).
    height: image height in pixels (y coordinates are relative to it).
    width: image width in pixels.

  Returns:
    'ymin xmin ymax xmax label ; ...' with integer coordinates in 0..999.
  """
  if len(boxes) != len(labels):
    raise ValueError(f'{len(boxes)} boxes but {len(labels)} labels')
  parts = []
  for (ymin, xmin, ymax, xmax), label in zip(boxes, labels, strict=True):
    q = [
      quantize_coord(ymin, height),
      quantize_coord(xmin, width),
      quantize_coord(ymax, height),
      quantize_coord(xmax, width),
    ]
    parts.append(' '.join(str(v) for v in q) + ' ' + label)
  return OBJECT_SEPARATOR.join(parts)


_DET_RE = re.compile(r'^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.*?)\s*$')


def parse_detection(text: str) -> list[tuple[tuple[int, int, int, int], str]]:
  """Inverse of `format_detection`: [((ymin, xmin, ymax, xmax), label)], bins 0..999.

  Malformed objects (e.g. from an undertrained model) are skipped, not errors.
  """
  out = []
  for part in text.split(OBJECT_SEPARATOR.strip()):
    m = _DET_RE.match(part)
    if m:
      box = tuple(int(m.group(i)) for i in range(1, 5))
      out.append((box, m.group(5)))
  return out
