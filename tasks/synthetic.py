"""Deterministic synthetic multilingual examples, generated in TensorFlow a batch at a time.

Each example is a pure function of (task, split, index, image_size, seed,
max_objects): its key is a hash of (seed * 1000 + 10 * task id + split id,
index) (`synthetic_scene.example_keys`), so 'train' and 'validation' come from
disjoint streams and any example can be regenerated on its own, alone or in any
batch. Scenes come from `synthetic_scene`; the texts are gathered from string
tables precomputed here from the hand-written word tables (`synthetic_words`)
and the prompt templates (`prompts`), so the grammar lives in Python once and
tf.data threads never call back into Python.

`batch_fn` makes n examples per call with ops over the batch (the train input's
path: one tf.data call per batch instead of ~100 small ops per example);
`example_fn` is the same for one index.

Raw example (what `example_fn` returns, what the seqio source emits; `batch_fn`
adds a leading [n]):
  image uint8 [S, S, 3]; inputs, targets, lang: tf.string [];
  objects int32 [M, 7]: (valid, colour, shape, ymin, xmin, ymax, xmax) per slot;
  word int32 [] (OCR word index, -1 if none).

`generate(...)` runs the same function eagerly for one example (tests, CLI,
vocabulary corpus).
"""

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from pali_pax.core import errors
from pali_pax.tasks import metrics_detection, prompts
from pali_pax.tasks import synthetic_scene as scene_lib
from pali_pax.tasks import synthetic_words as words

TASKS: tuple[str, ...] = (
  'caption',
  'vqa',
  'xvqa',
  'ocr',
  'vqg',
  'object_vqa',
  'detection',
  'split_cap',
  'span_corruption',
)
TEXT_ONLY_TASKS: tuple[str, ...] = ('span_corruption',)
SPLITS: tuple[str, ...] = ('train', 'validation')
QUESTION_TYPES: tuple[str, ...] = ('colour', 'shape', 'count')

# Stable ids for seeding: appending a task keeps earlier tasks' data unchanged.
_TASK_ID = {t: i for i, t in enumerate(TASKS)}
_SPLIT_ID = {'train': 0, 'validation': 1}
_MARK = '\x00'  # placeholder used to cut templates into constant parts
BATCH = 64  # examples per generator call in `dataset` (one tf.data call per batch)


@dataclasses.dataclass(frozen=True)
class SceneObject:
  """One drawn shape: names from synthetic_words, box (ymin, xmin, ymax, xmax) px, max exclusive."""

  shape: str
  colour: str
  box: tuple[int, int, int, int]

  @property
  def centre(self) -> tuple[int, int]:
    """(y, x) of a pixel inside the shape (for triangles too: apex up, base down)."""
    ymin, xmin, ymax, xmax = self.box
    return (ymin + (ymax - ymin) // 2, xmin + (xmax - xmin) // 2)


@dataclasses.dataclass(frozen=True)
class SyntheticExample:
  """One generated example, as Python values.

  Attributes:
    task: the task name.
    lang: output language code.
    inputs: the prompt (for span_corruption: the clean text, noised after tokenising).
    targets: the target ('' for span_corruption).
    image: uint8 [size, size, 3] (None for text-only tasks).
    objects: the shapes in reading order (empty for OCR / text-only).
    word: the rendered OCR word ('' unless task == 'ocr').
  """

  task: str
  lang: str
  inputs: str
  targets: str
  image: np.ndarray | None
  objects: tuple[SceneObject, ...]
  word: str


def check_task(task: str) -> str:
  """Returns `task`; ValueError listing the synthetic tasks otherwise."""
  if task not in TASKS:
    raise errors.ConfigError(f'Unknown synthetic task {task!r}; valid tasks: {", ".join(TASKS)}')
  return task


def _check_split(split: str) -> str:
  if split not in _SPLIT_ID:
    raise errors.ConfigError(f'Unknown split {split!r}; valid splits: {", ".join(SPLITS)}')
  return split


def _parts(template: str, *fields: str) -> list[str]:
  """'{a} and {b}' -> ['', ' and ', ''] (the constant text around the fields, in order)."""
  out, rest = [], template
  for f in fields:
    head, rest = rest.split('{' + f + '}', 1)
    out.append(head)
  return [*out, rest]


@functools.cache
def text_tables() -> dict[str, list]:
  """Every constant string the generator gathers from (nested lists; axes lang, colour, shape)."""
  tables: dict[str, list] = {'lang': list(words.LANGS), 'ocr_words': list(words.OCR_WORDS)}
  for lang in words.LANGS:
    t = words.table(lang)
    row = {
      'caption_prompt': prompts.caption_prompt(lang),
      'vqa_prompt': prompts.vqa_prompt(_MARK, lang).split(_MARK),
      'vqg_prompt': prompts.vqg_prompt(_MARK, lang).split(_MARK),
      'object_vqa_prompt': prompts.object_vqa_prompt(_MARK, lang).split(_MARK),
      'detection_prompt': prompts.detection_prompt(lang),
      'split_prompt': prompts.split_cap_prompt(lang, _MARK, _MARK).split(_MARK),
      'np': [[words.noun_phrase(lang, c, s) for s in words.SHAPES] for c in words.COLOURS],
      'and': _parts(t.and_, 'a', 'b'),
      'alt': _parts(t.alt_text, 'objs'),
      'q_colour': [t.q_colour.format(shape_def=t.shape_def[s]) for s in words.SHAPES],
      'q_shape': [t.q_shape.format(colour=words.object_colour(lang, c)) for c in words.COLOURS],
      'q_count': t.q_count,
      'q_presence': [
        [t.q_presence.format(np=words.noun_phrase(lang, c, s)) for s in words.SHAPES]
        for c in words.COLOURS
      ],
      'a_colour': [t.colour[c] for c in words.COLOURS],
      'a_shape': [t.shape[s] for s in words.SHAPES],
      'a_number': list(t.numbers),
      'yes': t.yes,
      'no': t.no,
    }
    for k, v in row.items():
      tables.setdefault(k, []).append(v)
  return tables


def _at(table: tf.Tensor, *index: tf.Tensor) -> tf.Tensor:
  """table[i0[r], i1[r], ...] for each row r (int32 [n] indices; a gather, no loop)."""
  return tf.gather_nd(table, tf.stack(index, axis=-1))


def _pick(options: list[tf.Tensor], i: tf.Tensor) -> tf.Tensor:
  """options[i[r]][r] for each row r: options are [n] tensors, i int32 [n] (no tf.cond)."""
  return tf.gather(tf.stack(options, axis=1), i, batch_dims=1)


def _caption(T: dict[str, tf.Tensor], li: tf.Tensor, sc: dict[str, tf.Tensor]) -> tf.Tensor:
  """Noun phrases of the objects in reading order, joined by the language's 'and'. [n]"""
  pre, mid, suf = tf.unstack(tf.gather(T['and'], li), axis=1)
  cap = _at(T['np'], li, sc['colours'][:, 0], sc['shapes'][:, 0])
  for k in range(1, sc['colours'].shape[1]):
    obj = _at(T['np'], li, sc['colours'][:, k], sc['shapes'][:, k])
    cap = tf.where(sc['valid'][:, k], tf.strings.join([pre, cap, mid, obj, suf]), cap)
  return cap


def _alt_text(T: dict[str, tf.Tensor], li: tf.Tensor, sc: dict[str, tf.Tensor]) -> tf.Tensor:
  pre, suf = tf.unstack(tf.gather(T['alt'], li), axis=1)
  return tf.strings.join([pre, _caption(T, li, sc), suf])


def _question(
  T: dict[str, tf.Tensor], qi: tf.Tensor, ai: tf.Tensor, sc: dict[str, tf.Tensor], keys: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
  """(question in language qi, answer in language ai) [n]: colour / shape / count, uniformly."""
  qtype = scene_lib.randint(keys, 0, 0, len(QUESTION_TYPES))
  j = scene_lib.randint(keys, 1, 0, sc['num_objects'])
  c = tf.gather(sc['colours'], j, batch_dims=1)
  sh = tf.gather(sc['shapes'], j, batch_dims=1)
  q = _pick(
    [_at(T['q_colour'], qi, sh), _at(T['q_shape'], qi, c), tf.gather(T['q_count'], qi)], qtype
  )
  number = _at(T['a_number'], ai, sc['num_objects'] - 1)
  a = _pick([_at(T['a_colour'], ai, c), _at(T['a_shape'], ai, sh), number], qtype)
  return q, a


def _presence(
  T: dict[str, tf.Tensor], li: tf.Tensor, sc: dict[str, tf.Tensor], keys: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
  """'Is there <np> in the image?' [n]: a present object or an absent combination, 50/50."""
  ns, combos = len(words.SHAPES), len(words.COLOURS) * len(words.SHAPES)
  present = scene_lib.randint(keys, 0, 0, 2)
  j = scene_lib.randint(keys, 1, 0, sc['num_objects'])
  hot = tf.one_hot(sc['colours'] * ns + sc['shapes'], combos, on_value=True, off_value=False)
  is_present = tf.reduce_any(hot & sc['valid'][:, :, None], axis=1)  # [n, combos]
  order = scene_lib.permutation(keys, 2, combos)  # the absent one: first absent in a random order
  first = tf.argmax(tf.cast(~tf.gather(is_present, order, batch_dims=1), tf.int32), axis=1)
  absent = tf.gather(order, first, batch_dims=1)
  c = _pick([absent // ns, tf.gather(sc['colours'], j, batch_dims=1)], present)
  sh = _pick([absent % ns, tf.gather(sc['shapes'], j, batch_dims=1)], present)
  return _at(T['q_presence'], li, c, sh), _pick(
    [tf.gather(T['no'], li), tf.gather(T['yes'], li)], present
  )


def _detection(
  T: dict[str, tf.Tensor], li: tf.Tensor, sc: dict[str, tf.Tensor], size: int
) -> tf.Tensor:
  """'ymin xmin ymax xmax label ; ...' [n], coordinates floor(1000 * px / size) in 0..999."""
  bins = metrics_detection.NUM_BOX_BINS
  q = tf.clip_by_value((bins * sc['boxes']) // size, 0, bins - 1)  # [n, M, 4]
  coords = tf.strings.reduce_join(tf.strings.as_string(q), axis=2, separator=' ')  # [n, M]
  labels = tf.gather(tf.gather(T['a_shape'], li), sc['shapes'], batch_dims=1)
  objs = tf.strings.join([coords, labels], separator=' ')
  out = objs[:, 0]
  for k in range(1, objs.shape[1]):  # valid objects are a prefix
    more = tf.strings.join([out, objs[:, k]], separator=metrics_detection.OBJECT_SEPARATOR)
    out = tf.where(sc['valid'][:, k], more, out)
  return out


def _split_cap(
  T: dict[str, tf.Tensor], li: tf.Tensor, text: tf.Tensor, keys: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
  """Split-captioning prompts and targets [n]: each text cut after 1 <= pos < units words
  (characters when it has no space), pos uniform.

  The cut is a byte offset and two substrings: the same strings as joining the first
  pos units and the rest, at a few ops per row instead of ragged masks (this runs
  in every train input call, and its graph is traced at every start).
  """
  spaced = tf.strings.regex_full_match(text, '.* .*')
  # Byte offsets of the units' starts: words after each ' ', characters from UTF-8.
  word_len = tf.strings.length(tf.strings.split(text, ' '))  # ragged bytes per word
  word_start = tf.cumsum(word_len + 1, axis=1, exclusive=True)
  _, char_start = tf.strings.unicode_decode_with_offsets(text, 'UTF-8')
  units = tf.where(spaced, word_start.row_lengths(), char_start.row_lengths())
  pos = scene_lib.randint(keys, 0, 1, tf.cast(units, tf.int32))

  def start_of(starts: tf.RaggedTensor) -> tf.Tensor:  # starts[r, pos[r]] (clipped: other kind)
    table = tf.cast(starts.to_tensor(), tf.int32)
    return tf.gather(table, tf.minimum(pos, tf.shape(table)[1] - 1), batch_dims=1)

  # The first part ends before the separator ' ' (words) or at the unit (characters).
  start = tf.where(spaced, start_of(word_start), start_of(char_start))
  first = tf.strings.substr(text, tf.zeros_like(start), start - tf.cast(spaced, tf.int32))
  rest = tf.strings.substr(text, start, tf.strings.length(text) - start)
  pre, mid, post = tf.unstack(tf.gather(T['split_prompt'], li), axis=1)
  return tf.strings.join([pre, tf.strings.as_string(pos), mid, first, post]), rest


def batch_fn(
  task: str,
  split: str,
  image_size: int = 224,
  seed: int = 0,
  max_objects: int = 2,
  ocr_style: str = 'plain',
) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
  """indices (int64 [n]) -> n raw examples (the fields of the module docstring, with a
  leading [n]); traceable by tf.data. Row i depends only on indices[i].

  Args:
    task: one of TASKS.
    split: 'train' or 'validation'.
    image_size: side of the square image in pixels.
    seed: global data seed.
    max_objects: most shapes per image (1..3).
    ocr_style: how OCR words are drawn (`synthetic_scene.OCR_STYLES`): 'plain' black
      or white on the gray background at one size; 'varied' random colours (levels
      far apart) and sizes.
  """
  check_task(task)
  _check_split(split)
  scene_lib.check_ocr_style(ocr_style)
  stream = int(seed) * 1000 + 10 * _TASK_ID[task] + _SPLIT_ID[split]
  tables = text_tables()
  size, m = int(image_size), int(max_objects)
  if task == 'ocr':
    scene_lib.ocr_glyphs(size, ocr_style)  # render the glyphs now, in this (main) thread

  @tf.autograph.experimental.do_not_convert
  def fn(indices: tf.Tensor) -> dict[str, tf.Tensor]:
    T = {k: tf.constant(v) for k, v in tables.items()}
    keys = scene_lib.example_keys(stream, tf.reshape(indices, [-1]))
    n = tf.shape(keys)[0]
    li = scene_lib.randint(keys, 0, 0, len(words.LANGS))
    if task == 'ocr':
      ocr = scene_lib.sample_ocr(scene_lib.subkeys(keys, 1), size, ocr_style)
      return {
        'image': scene_lib.render_ocr(ocr, size, ocr_style),
        'inputs': tf.fill([n], prompts.ocr_prompt()),
        'targets': tf.gather(T['ocr_words'], ocr['word']),
        'lang': tf.fill([n], 'en'),
        'objects': tf.zeros([n, m, 7], tf.int32),
        'word': ocr['word'],
      }
    sample, render = scene_lib.shared_scene_fns(size, m)
    sc = sample(scene_lib.subkeys(keys, 1))
    qkeys = scene_lib.subkeys(keys, 2)
    if task == 'caption':
      inputs, targets = tf.gather(T['caption_prompt'], li), _caption(T, li, sc)
    elif task in ('vqa', 'vqg'):
      q, a = _question(T, li, li, sc, qkeys)
      pre, post = tf.unstack(tf.gather(T[f'{task}_prompt'], li), axis=1)
      inputs = tf.strings.join([pre, q if task == 'vqa' else a, post])
      targets = a if task == 'vqa' else q
    elif task == 'xvqa':  # question in another language than the answer
      other = scene_lib.randint(scene_lib.subkeys(keys, 3), 0, 0, len(words.LANGS) - 1)
      qi = (li + 1 + other) % len(words.LANGS)
      q, targets = _question(T, qi, li, sc, qkeys)
      pre, post = tf.unstack(tf.gather(T['vqa_prompt'], li), axis=1)
      inputs = tf.strings.join([pre, q, post])
    elif task == 'object_vqa':
      q, targets = _presence(T, li, sc, qkeys)
      pre, post = tf.unstack(tf.gather(T['object_vqa_prompt'], li), axis=1)
      inputs = tf.strings.join([pre, q, post])
    elif task == 'detection':
      inputs, targets = tf.gather(T['detection_prompt'], li), _detection(T, li, sc, size)
    elif task == 'split_cap':
      inputs, targets = _split_cap(T, li, _alt_text(T, li, sc), qkeys)
    else:  # span_corruption: plain text, noised after tokenisation
      q, a = _question(T, li, li, sc, qkeys)
      inputs = tf.strings.join([_alt_text(T, li, sc), q, a], separator=' ')
      targets = tf.fill([n], '')
    if task in TEXT_ONLY_TASKS:
      image = tf.zeros([n, size, size, 3], tf.uint8)
    else:
      image = render(sc)
    fields = [tf.cast(sc['valid'], tf.int32), sc['colours'], sc['shapes']]
    objects = tf.concat([*(f[:, :, None] for f in fields), sc['boxes']], axis=2)
    return {
      'image': image,
      'inputs': inputs,
      'targets': targets,
      'lang': tf.gather(T['lang'], li),
      'objects': objects,
      'word': tf.fill([n], -1),
    }

  return fn


def example_fn(
  task: str,
  split: str,
  image_size: int = 224,
  seed: int = 0,
  max_objects: int = 2,
  ocr_style: str = 'plain',
) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
  """index (int64 []) -> raw example dict (see module docstring): `batch_fn` for one index."""
  fn = batch_fn(task, split, image_size, seed, max_objects, ocr_style)

  @tf.autograph.experimental.do_not_convert
  def one(index: tf.Tensor) -> dict[str, tf.Tensor]:
    return {k: v[0] for k, v in fn(tf.reshape(index, [1])).items()}

  return one


def dataset(
  task: str,
  split: str,
  image_size: int = 224,
  seed: int = 0,
  max_objects: int = 2,
  start: int = 0,
  stop: int = 1000,
  step: int = 1,
  ocr_style: str = 'plain',
) -> tf.data.Dataset:
  """Raw examples start, start + step, ... < stop (made BATCH at a time, order kept)."""
  fn = batch_fn(task, split, image_size, seed, max_objects, ocr_style)
  ds = tf.data.Dataset.range(start, stop, step).batch(BATCH)
  return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()


@functools.lru_cache(maxsize=64)
def _eager_fn(
  task: str, split: str, image_size: int, seed: int, max_objects: int, ocr_style: str
) -> Callable:
  fn = example_fn(task, split, image_size, seed, max_objects, ocr_style)
  return tf.function(fn, input_signature=[tf.TensorSpec([], tf.int64)])


def to_python(task: str, raw: dict[str, np.ndarray | bytes]) -> SyntheticExample:
  """Raw example (numpy values, e.g. from as_numpy_iterator) -> SyntheticExample."""

  def text(x: bytes | np.ndarray) -> str:
    return x.decode('utf-8') if isinstance(x, bytes) else np.asarray(x).item().decode('utf-8')

  objects = tuple(
    SceneObject(
      shape=words.SHAPES[int(o[2])],
      colour=words.COLOURS[int(o[1])],
      box=tuple(int(v) for v in o[3:7]),
    )
    for o in np.asarray(raw['objects'])
    if o[0]
  )
  word = int(raw['word'])
  return SyntheticExample(
    task=task,
    lang=text(raw['lang']),
    inputs=text(raw['inputs']),
    targets=text(raw['targets']),
    image=None if task in TEXT_ONLY_TASKS else np.asarray(raw['image']),
    objects=objects,
    word=words.OCR_WORDS[word] if word >= 0 else '',
  )


def generate(
  task: str,
  split: str,
  index: int,
  image_size: int = 224,
  seed: int = 0,
  max_objects: int = 2,
  ocr_style: str = 'plain',
) -> SyntheticExample:
  """Example `index` of `task` / `split`, computed eagerly (the seqio source's values).

  Args:
    task: one of TASKS.
    split: 'train' or 'validation' (disjoint seed streams).
    index: example number, >= 0.
    image_size: side of the square image in pixels.
    seed: global data seed; changes every example.
    max_objects: most shapes per image (1..3).
    ocr_style: see `batch_fn`.
  """
  check_task(task)
  _check_split(split)
  raw = _eager_fn(task, split, int(image_size), int(seed), int(max_objects), ocr_style)(
    tf.constant(index, tf.int64)
  )
  return to_python(task, {k: v.numpy() for k, v in raw.items()})
