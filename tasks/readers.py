"""Real data readers for PaLI fine-tuning and evaluation, all with ONE raw example schema.

Raw example schema (every reader; dict of scalar / 1-D tf.string tensors):

  | key        | shape  | meaning                                                      |
  |------------|--------|--------------------------------------------------------------|
  | image      | []     | encoded image bytes as stored (JPEG/PNG/...); b'' text-only  |
  | image_id   | []     | dataset image id as a string (COCO int id -> '391895')       |
  | example_id | []     | id unique within the split: question id (VQA), image id      |
  |            |        | (COCO), '<image key>/<lang>' (XM3600); what result files need|
  | lang       | []     | language code of question and texts ('en', 'de', ...)        |
  | question   | []     | the question; b'' for captioning                             |
  | texts      | [None] | ALL references in file order: every caption of the image, or |
  |            |        | every human answer (10 for VQAv2/TextVQA); empty for test    |

Images stay encoded here: decoding, resizing and dropping undecodable images are
the preprocessing's job (`pali_pax.tasks.image_ops`). Fields not in the schema
(TextVQA OCR tokens, VQA answer types, ...) are dropped. Captions are
whitespace-stripped; nothing else is normalised.

Readers (each returns a seqio DataSource; files are opened lazily, when a split is
first read, so registering tasks for absent data does not fail at import):

  coco_captions_source(splits: Mapping[str, tuple[str, str]],
                       karpathy_splits: Mapping[str, Sequence[str]] | None = None)
      split -> (annotations JSON, image folder). Official captions_*2014.json
      (images[{id, file_name}], annotations[{image_id, caption}]) or the Karpathy
      dataset_coco.json (images[{filepath, filename, split, cocoid, sentences}]).
      One example per image with all its captions.
  xm3600_source(captions_file: str, image_dir: str,
                languages: Sequence[str] | None = None, split: str = 'test',
                caption_field: str | Sequence[str] = 'caption', image_ext: str = '.jpg')
      Crossmodal-3600 JSONL ({"image/key": k, "<lang>": {"caption": [...]}}), one
      example per (image, language); unknown language -> ValueError listing those
      present. `xm3600_languages(captions_file)` lists them. The registered tasks
      read XM3600_REFERENCE_FIELDS: 'caption/tokenized' where present, else 'caption'.
  vqav2_source(splits: Mapping[str, tuple[str, str | None, str]],
               image_pattern: str | None = None)
      split -> (questions JSON, annotations JSON or None for test, image folder);
      images 'COCO_{subtype}_{image_id:012d}.jpg' with subtype from data_subtype.
      Also reads OK-VQA (same format).
  textvqa_source(splits: Mapping[str, tuple[str, str]], image_ext: str = '.jpg')
      split -> (TextVQA JSON {'data': [...]}, image folder with <image_id>.jpg).
  tfrecord_source(file_pattern, image_key='image/encoded', text_keys=('texts',),
                  question_key='question', image_id_key='image/id',
                  example_id_key='example_id', lang_key='lang', default_lang='en',
                  int64_keys=(), counter='tfrecord')
      TFRecords of tf.train.Example; `write_tfrecord(path, examples)` writes
      raw-schema examples under those default keys.
  tfds_source(name, data_dir=None, splits=('train', 'validation', 'test'),
              image_key='image', text_keys=('captions/text',), question_key=None,
              image_id_key=None, example_id_key=None, lang_key=None, default_lang='en')
      A TFDS dataset prepared locally (never downloads; FileNotFoundError if absent).

  jsonl_source(splits: Mapping[str, str], data_dir: str, task: str | None = None)
      Your own data, one JSON object per line (docs/data_format.md): image path
      relative to data_dir, task or prompt, lang, targets. `question` holds the
      finished prompt. `jsonl_task_counts(paths, data_dir)` counts lines per task.

Errors (all `pali_pax.core.errors.PaliPaxError`s): a missing file or folder raises
`MissingFileError` (a FileNotFoundError) naming it and what it should hold;
malformed JSON, non-UTF-8 bytes or missing fields raise `DataFormatError` (a
ValueError) naming the file and the offending entry (e.g. "annotations[3] has no
'caption' field"). Confined data: an image path from an annotation file that is
absolute or leaves the image folder is a `DataFormatError` naming the file and the
entry, unless the reader gets `allow_outside_data_dir=True`; image files that do not
exist are reported, with their entries, when the split is loaded. TFRecord examples
with text that is not valid UTF-8 are dropped and counted
(`pali_pax.tasks.drop_counts`, reason 'invalid_utf8'), never decoded with U+FFFD.
"""

from pali_pax.tasks.readers_captions import (
  KARPATHY_SPLITS,
  XM3600_REFERENCE_FIELDS,
  coco_captions_source,
  xm3600_languages,
  xm3600_source,
)
from pali_pax.tasks.readers_common import (
  RAW_FEATURES,
  RAW_OUTPUT_SIGNATURE,
  DataFormatError,
  Record,
  records_source,
  records_to_dataset,
)
from pali_pax.tasks.readers_jsonl import jsonl_source, jsonl_task_counts
from pali_pax.tasks.readers_tfrecord import (
  make_tf_example,
  tfds_builder,
  tfds_source,
  tfrecord_source,
  write_tfrecord,
)
from pali_pax.tasks.readers_vqa import VQA_IMAGE_PATTERN, textvqa_source, vqav2_source

__all__ = [
  'KARPATHY_SPLITS',
  'RAW_FEATURES',
  'RAW_OUTPUT_SIGNATURE',
  'VQA_IMAGE_PATTERN',
  'XM3600_REFERENCE_FIELDS',
  'DataFormatError',
  'Record',
  'coco_captions_source',
  'jsonl_source',
  'jsonl_task_counts',
  'make_tf_example',
  'records_source',
  'records_to_dataset',
  'textvqa_source',
  'tfds_builder',
  'tfds_source',
  'tfrecord_source',
  'vqav2_source',
  'write_tfrecord',
  'xm3600_languages',
  'xm3600_source',
]
