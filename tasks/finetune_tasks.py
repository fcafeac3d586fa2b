"""seqio tasks of the real fine-tuning / evaluation datasets (registered on demand).

`register_finetune_tasks(coco_dir=..., vqa_dir=..., ...)` registers a task for
each dataset given, reading with `pali_pax.tasks.readers` and scoring with
`pali_pax.tasks.metrics`. Nothing is read at registration except the XM3600
language list; files are opened when a split is first read.

| task | prompt | training target | metrics (`metrics.METRICS_BY_TASK` key; all references) |
|---|---|---|---|
| pali_coco_captions | Generate caption in EN: | one random caption | caption |
| pali_vqav2 | Answer in EN: <question> | most frequent answer | vqa |
| pali_textvqa | Answer in EN: <question> | most frequent answer | textvqa |
| pali_xm3600_<lang> (+ mixture pali_xm3600) | Generate caption in <LANG>: | one random caption (caption/tokenized where present) | caption |
| pali_tfrecord_<kind> | caption or VQA prompt, language from each example | as above | as above |
| pali_jsonl_<task> (+ mixture pali_jsonl) | the line's "prompt" or its task's template | random; most frequent for vqa, textvqa | the line's "task" |

Expected layouts (the usual downloads, also in `FAMILIES`, which `pali-pax tasks`
shows; other layouts: call the readers and `register_task` yourself):
  coco_dir:    dataset_coco.json (Karpathy; images under coco_dir/<filepath>/)
               or annotations/captions_{train,val}2014.json + {train,val}2014/
  vqa_dir:     v2_OpenEnded_mscoco_{train,val}2014_questions.json,
               v2_mscoco_{train,val}2014_annotations.json; images in
               coco_image_dir (default coco_dir or vqa_dir)/{train,val}2014/
  textvqa_dir: TextVQA_0.5.1_{train,val}.json + train_images/
  xm3600_dir:  captions.jsonl + images/<key>.jpg
  jsonl_dir:   train.jsonl, val.jsonl (and test.jsonl), the format of docs/data_format.md;
               image paths relative to jsonl_dir. One task per "task" value in the files.
Splits are 'train' and 'validation' ('test' for Karpathy, XM3600 and test.jsonl).

The dataset tasks are image tasks: an empty (0-byte) image file is dropped and
counted (reason 'empty'; TFRecord rows without image bytes are text-only examples
unless `tfrecord_text_only_ok=False`), as are undecodable images and images whose
header declares more than `max_image_pixels` pixels ('too_large'); see
`image_ops.dropped_images(task, reason)`.
Image paths in the annotation files must stay inside the dataset folder unless
`allow_outside_data_dir=True` (experiments: `ALLOW_OUTSIDE_DATA_DIR`).
"""

import os
from collections.abc import Callable, Mapping, Sequence

import seqio
import tensorflow as tf

from pali_pax.core import errors
from pali_pax.tasks import features, image_ops, metrics, prompts, readers
from pali_pax.tasks import vocab as vocab_lib

# Every fine-tune family: `register_finetune_tasks` keyword -> (tasks it registers, data layout).
# `pali-pax tasks` lists these, so families show before any data is registered.
FAMILIES: dict[str, tuple[str, str]] = {
  'coco_dir': (
    'pali_coco_captions',
    'dataset_coco.json (Karpathy) or annotations/captions_{train,val}2014.json + {train,val}2014/',
  ),
  'vqa_dir': (
    'pali_vqav2',
    'v2_OpenEnded_mscoco_{train,val}2014_questions.json, v2_mscoco_{train,val}2014_annotations.json',
  ),
  'textvqa_dir': ('pali_textvqa', 'TextVQA_0.5.1_{train,val}.json + train_images/'),
  'xm3600_dir': ('pali_xm3600_<lang>, pali_xm3600', 'captions.jsonl + images/<key>.jpg'),
  'jsonl_dir': (
    'pali_jsonl_<task>, pali_jsonl',
    'train.jsonl, val.jsonl (+ test.jsonl), your own data: docs/data_format.md',
  ),
}
DEFAULT_IMAGE_SIZE = 224
RAW_KEEP = ('texts', 'example_id', 'image_id', 'lang')  # kept for metrics and result files
_CAPTION_SEED_SALT = 2  # features.example_seed salt of the training-caption choice


def _first_reference_or_random(texts: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """One of the references, uniformly at random ('' when there are none)."""
  n = tf.size(texts)
  i = tf.random.stateless_uniform([], seed, 0, tf.maximum(n, 1), dtype=tf.int32)
  return tf.cond(n > 0, lambda: texts[i], lambda: tf.constant(''))


def _most_frequent(texts: tf.Tensor) -> tf.Tensor:
  """The most frequent reference (first seen wins ties; '' when there are none)."""
  uniq, _, counts = tf.unique_with_counts(texts)
  return tf.cond(tf.size(texts) > 0, lambda: uniq[tf.argmax(counts)], lambda: tf.constant(''))


def text_preprocessor(
  kind: str, lang: str | None = None, prompt_given: bool = False
) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
  """seqio preprocessor: raw-schema example -> inputs / targets texts (image untouched).

  Args:
    kind: 'caption' (target: a random reference) or 'vqa' (target: the most
      frequent answer; prompt from the question).
    lang: prompt language; None = each example's 'lang' field.
    prompt_given: the 'question' field holds the finished prompt (JSONL data).
  """
  if kind not in ('caption', 'vqa'):
    raise errors.ConfigError(f'Unknown kind {kind!r}; valid kinds: caption, vqa')
  if lang is not None:
    prompts.check_language(lang)

  @seqio.map_over_dataset(num_seeds=1)
  @tf.autograph.experimental.do_not_convert
  def fn(ex: Mapping[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
    language = lang if lang is not None else ex['lang']
    out = {k: ex[k] for k in ('image', 'has_image', *RAW_KEEP) if k in ex}
    if prompt_given:
      out['inputs'] = ex['question']
    elif kind == 'caption':
      out['inputs'] = prompts.caption_prompt(language)
    else:
      out['inputs'] = prompts.vqa_prompt(ex['question'], language)
    if kind == 'caption':
      out['targets'] = _first_reference_or_random(
        ex['texts'], features.example_seed(ex, seed, _CAPTION_SEED_SALT)
      )
    else:
      out['targets'] = _most_frequent(ex['texts'])
    return out

  return fn


def register_task(
  name: str,
  source: seqio.DataSource,
  kind: str,
  image_size: int = DEFAULT_IMAGE_SIZE,
  vocab_path: str | None = None,
  lang: str | None = 'en',
  metric_kind: str | None = None,
  text_only_ok: bool = False,
  max_image_pixels: int | None = image_ops.MAX_IMAGE_PIXELS,
  prompt_given: bool = False,
) -> str:
  """Registers (or replaces) one task over a raw-schema source; returns its name.

  Args:
    name: task name.
    source: a reader's seqio source (raw schema, see pali_pax.tasks.readers).
    kind: 'caption' or 'vqa' (prompt and training target).
    image_size: image side after resizing.
    vocab_path: SentencePiece model (None = the shipped synthetic one).
    lang: prompt language; None = per example, from its 'lang' field.
    metric_kind: key of `metrics.METRICS_BY_TASK` ('caption', 'vqa', 'textvqa'); default kind.
    text_only_ok: an empty image means a text-only example (zero image,
      has_image 0) instead of a dropped one (counted as 'empty').
    max_image_pixels: images declaring more pixels are dropped undecoded
      (counted as 'too_large'); None: no cap.
    prompt_given: the source's 'question' field is the finished prompt.
  """
  vocab = vocab_lib.get_vocabulary(vocab_path)
  seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(
    name,
    source=source,
    preprocessors=[
      image_ops.decode_images(
        image_size, counter=name, allow_text_only=text_only_ok, max_pixels=max_image_pixels
      ),
      text_preprocessor(kind, lang, prompt_given),
      features.tokenize_text,
      seqio.preprocessors.append_eos_after_trim,
    ],
    output_features=features.output_features(vocab),
    postprocess_fn=features.postprocess_references,
    metric_fns=metrics.metrics_for(metric_kind or kind),
    shuffle_buffer_size=256,  # examples hold decoded images: keep the buffer small
  )
  return name


def _join(d: str, *names: str) -> str:
  return os.path.join(d, *names)


def register_finetune_tasks(
  coco_dir: str | None = None,
  vqa_dir: str | None = None,
  textvqa_dir: str | None = None,
  xm3600_dir: str | None = None,
  tfrecord_patterns: Mapping[str, str | Sequence[str]] | None = None,
  tfrecord_kind: str = 'caption',
  coco_image_dir: str | None = None,
  xm3600_langs: Sequence[str] | None = None,
  image_size: int = DEFAULT_IMAGE_SIZE,
  vocab_path: str | None = None,
  suffix: str = '',
  allow_outside_data_dir: bool = False,
  max_image_pixels: int | None = image_ops.MAX_IMAGE_PIXELS,
  tfrecord_text_only_ok: bool = True,
  jsonl_dir: str | None = None,
) -> list[str]:
  """Registers the tasks of every dataset given (layouts in the module docstring).

  Args:
    coco_dir: COCO captions (Karpathy or official annotations).
    vqa_dir: VQAv2 question / annotation files.
    textvqa_dir: TextVQA.
    xm3600_dir: Crossmodal-3600 (test split only).
    tfrecord_patterns: seqio split -> TFRecord file pattern(s) of tf.train.Examples
      in `readers.write_tfrecord`'s format ('image/encoded', 'texts', 'question', 'lang').
    tfrecord_kind: 'caption' or 'vqa' for the TFRecord task.
    coco_image_dir: folder holding train2014/ and val2014/ for VQAv2 images.
    xm3600_langs: XM3600 languages to register (None: all in the file).
    image_size: image side (224, or 588 for the high-resolution phase).
    vocab_path: SentencePiece model, e.g. mT5's (None: the shipped synthetic one).
    suffix: appended to every name.
    allow_outside_data_dir: accept image paths in the annotation files that are
      absolute or leave the dataset folder (default: DataFormatError naming them).
    max_image_pixels: images declaring more pixels are dropped (see register_task).
    tfrecord_text_only_ok: TFRecord examples without image bytes are text-only
      examples (the raw schema's b''), as in mixed corpora; False drops and counts
      them as 'empty'.
    jsonl_dir: your own data in the pali_pax JSONL format (docs/data_format.md).

  Returns:
    The registered task and mixture names.
  """
  common = {
    'image_size': image_size,
    'vocab_path': vocab_path,
    'max_image_pixels': max_image_pixels,
  }
  confine = {'allow_outside_data_dir': allow_outside_data_dir}
  names: list[str] = []
  if coco_dir:
    karpathy = _join(coco_dir, 'dataset_coco.json')
    if tf.io.gfile.exists(karpathy):
      splits = {s: (karpathy, coco_dir) for s in ('train', 'validation', 'test')}
    else:
      ann = _join(coco_dir, 'annotations', 'captions_{}2014.json')
      splits = {
        'train': (ann.format('train'), _join(coco_dir, 'train2014')),
        'validation': (ann.format('val'), _join(coco_dir, 'val2014')),
      }
    src = readers.coco_captions_source(splits, **confine)
    names.append(register_task(f'pali_coco_captions{suffix}', src, 'caption', **common))
  if vqa_dir:
    images = coco_image_dir or coco_dir or vqa_dir
    splits = {
      split: (
        _join(vqa_dir, f'v2_OpenEnded_mscoco_{sub}2014_questions.json'),
        _join(vqa_dir, f'v2_mscoco_{sub}2014_annotations.json'),
        _join(images, f'{sub}2014'),
      )
      for split, sub in (('train', 'train'), ('validation', 'val'))
    }
    src = readers.vqav2_source(splits, **confine)
    names.append(register_task(f'pali_vqav2{suffix}', src, 'vqa', **common))
  if textvqa_dir:
    images = _join(textvqa_dir, 'train_images')  # TextVQA val images are in train_images too
    splits = {
      split: (_join(textvqa_dir, f'TextVQA_0.5.1_{sub}.json'), images)
      for split, sub in (('train', 'train'), ('validation', 'val'))
    }
    src = readers.textvqa_source(splits, **confine)
    names.append(
      register_task(f'pali_textvqa{suffix}', src, 'vqa', metric_kind='textvqa', **common)
    )
  if xm3600_dir:
    captions = _join(xm3600_dir, 'captions.jsonl')
    fields = readers.XM3600_REFERENCE_FIELDS
    langs = list(xm3600_langs) if xm3600_langs else readers.xm3600_languages(captions, fields)
    lang_tasks = []
    for lang in langs:
      src = readers.xm3600_source(
        captions, _join(xm3600_dir, 'images'), languages=[lang], caption_field=fields, **confine
      )
      lang_tasks.append(
        register_task(f'pali_xm3600_{lang}{suffix}', src, 'caption', lang=lang, **common)
      )
    seqio.MixtureRegistry.remove(f'pali_xm3600{suffix}')
    seqio.MixtureRegistry.add(f'pali_xm3600{suffix}', lang_tasks, default_rate=1.0)
    names += [*lang_tasks, f'pali_xm3600{suffix}']
  if tfrecord_patterns:
    name = f'pali_tfrecord_{tfrecord_kind}{suffix}'
    src = readers.tfrecord_source(dict(tfrecord_patterns), counter=name)
    names.append(
      register_task(
        name, src, tfrecord_kind, lang=None, text_only_ok=tfrecord_text_only_ok, **common
      )
    )
  if jsonl_dir:
    names += register_jsonl_tasks(jsonl_dir, suffix=suffix, **common, **confine)
  return names


JSONL_SPLITS = {'train': 'train.jsonl', 'validation': 'val.jsonl', 'test': 'test.jsonl'}


def jsonl_tasks_with_data(
  data_dir: str, split: str = 'validation', suffix: str = '', allow_outside_data_dir: bool = False
) -> list[str]:
  """Names of the pali_jsonl_<task> tasks that have lines in `split`'s file ([] if none).

  Evaluate and decode these, not the mixture: paxml computes seqio metrics of tasks only.
  """
  path = _join(data_dir, JSONL_SPLITS[split])
  if not tf.io.gfile.exists(path):
    return []
  counts = readers.jsonl_task_counts([path], data_dir, allow_outside_data_dir)
  return [f'pali_jsonl_{t}{suffix}' for t in counts]


def register_jsonl_tasks(
  data_dir: str,
  image_size: int = DEFAULT_IMAGE_SIZE,
  vocab_path: str | None = None,
  suffix: str = '',
  max_image_pixels: int | None = image_ops.MAX_IMAGE_PIXELS,
  allow_outside_data_dir: bool = False,
) -> list[str]:
  """Registers pali_jsonl_<task> per task in the JSONL files, and their mixture pali_jsonl.

  Lines without an image are text-only examples; image paths must stay inside
  `data_dir` unless `allow_outside_data_dir`. Oversized images are dropped (see
  `register_task`).

  Reads the files (present ones of `JSONL_SPLITS`) to find the tasks; the mixture
  samples each task in proportion to its number of examples. Returns the names.
  """
  splits = {
    split: _join(data_dir, f)
    for split, f in JSONL_SPLITS.items()
    if tf.io.gfile.exists(_join(data_dir, f))
  }
  if not splits:
    raise FileNotFoundError(
      f'no JSONL data in {data_dir!r}: expected {", ".join(JSONL_SPLITS.values())}'
    )
  counts = readers.jsonl_task_counts(list(splits.values()), data_dir, allow_outside_data_dir)
  tasks = []
  for task, count in counts.items():
    src = readers.jsonl_source(splits, data_dir, task, allow_outside_data_dir)
    kind = 'vqa' if task in ('vqa', 'textvqa') else 'caption'  # training target choice
    name = f'pali_jsonl_{task}{suffix}'
    register_task(
      name,
      src,
      kind,
      image_size,
      vocab_path,
      lang=None,
      metric_kind=task,
      text_only_ok=True,  # the format's lines without "image"
      max_image_pixels=max_image_pixels,
      prompt_given=True,
    )
    tasks.append((name, count))
  seqio.MixtureRegistry.remove(f'pali_jsonl{suffix}')
  seqio.MixtureRegistry.add(f'pali_jsonl{suffix}', tasks)
  return [name for name, _ in tasks] + [f'pali_jsonl{suffix}']
