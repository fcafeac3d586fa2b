"""Captioning readers: COCO captions (official and Karpathy JSON) and Crossmodal-3600 JSONL.

Both emit the raw schema of `pali_pax.tasks.readers` with `question == ''` and
`texts` = all reference captions of the image (whitespace-stripped, file order).
Image paths from the files stay inside the image folder unless
`allow_outside_data_dir=True` (see `readers_common.data_path`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import seqio

from pali_pax.tasks.readers_common import (
  DataFormatError,
  Record,
  data_path,
  get_field,
  load_json,
  load_jsonl,
  records_source,
  require_dir,
)

# seqio split -> Karpathy split names; 'restval' is the part of COCO val2014 that the
# Karpathy split gives to training.
KARPATHY_SPLITS: dict[str, tuple[str, ...]] = {
  'train': ('train', 'restval'),
  'validation': ('val',),
  'test': ('test',),
}


def _coco_official_records(
  data: dict[str, Any], path: str, image_dir: str, allow_outside: bool
) -> list[Record]:
  """captions_{train,val}2014.json: images[{id, file_name}], annotations[{image_id, caption}]."""
  images = get_field(data, 'images', path, 'top level', list)
  annotations = get_field(data, 'annotations', path, 'top level', list)
  captions: dict[str, list[str]] = {}
  for i, ann in enumerate(annotations):
    where = f'annotations[{i}]'
    image_id = get_field(ann, 'image_id', path, where, (int, str))
    caption = get_field(ann, 'caption', path, where, str)
    captions.setdefault(str(image_id), []).append(caption.strip())
  records = []
  for i, image in enumerate(images):
    where = f'images[{i}]'
    image_id = str(get_field(image, 'id', path, where, (int, str)))
    file_name = get_field(image, 'file_name', path, where, str)
    origin = f"{path!r} {where}['file_name']"
    records.append(
      Record(
        image_path=data_path(image_dir, [file_name], origin, allow_outside),
        image_id=image_id,
        example_id=image_id,
        lang='en',
        question='',
        # Test images have no captions: kept with texts == () for inference.
        texts=tuple(captions.get(image_id, ())),
        origin=origin,
      )
    )
  return records


def _coco_karpathy_records(
  data: dict[str, Any], path: str, image_dir: str, wanted: Sequence[str], allow_outside: bool
) -> list[Record]:
  """dataset_coco.json: images[{filepath, filename, split, cocoid, sentences[{raw}]}]."""
  images = get_field(data, 'images', path, 'top level', list)
  records = []
  for i, image in enumerate(images):
    where = f'images[{i}]'
    if get_field(image, 'split', path, where, str) not in wanted:
      continue
    sentences = get_field(image, 'sentences', path, where, list)
    texts = tuple(
      get_field(s, 'raw', path, f'{where}.sentences[{j}]', str).strip()
      for j, s in enumerate(sentences)
    )
    # cocoid is the COCO image id; imgid is only an index into this file.
    key = 'cocoid' if 'cocoid' in image else 'imgid'
    image_id = str(get_field(image, key, path, where, (int, str)))
    subdir = image.get('filepath', '')
    if not isinstance(subdir, str):
      raise DataFormatError(f"{path!r}: {where}['filepath'] should be str")
    filename = get_field(image, 'filename', path, where, str)
    origin = f"{path!r} {where}['filepath', 'filename']"
    records.append(
      Record(
        image_path=data_path(image_dir, [subdir, filename], origin, allow_outside),
        image_id=image_id,
        example_id=image_id,
        lang='en',
        question='',
        texts=texts,
        origin=origin,
      )
    )
  return records


def coco_captions_source(
  splits: Mapping[str, tuple[str, str]],
  karpathy_splits: Mapping[str, Sequence[str]] | None = None,
  allow_outside_data_dir: bool = False,
) -> seqio.FunctionDataSource:
  """COCO captions: one example per image with all of its captions.

  Args:
    splits: seqio split -> (annotations JSON path, image folder). The JSON is either
      the official `captions_{train,val}2014.json` (images are `<folder>/<file_name>`)
      or the Karpathy `dataset_coco.json` (detected by its `sentences` lists; images
      are `<folder>/<filepath>/<filename>`, so the folder is the COCO root holding
      train2014/ and val2014/).
    karpathy_splits: for the Karpathy format, seqio split -> Karpathy split names to
      keep. Default `KARPATHY_SPLITS`; a split missing from it keeps the Karpathy
      split of the same name.
    allow_outside_data_dir: accept image paths that are absolute or leave the
      image folder (otherwise DataFormatError naming the file and entry).

  Returns:
    A seqio source of raw-schema examples (`lang` 'en', `question` '').
  """
  karpathy = dict(KARPATHY_SPLITS if karpathy_splits is None else karpathy_splits)

  def load(split: str) -> list[Record]:
    path, image_dir = splits[split]
    data = load_json(path, 'COCO captions annotations')
    if not isinstance(data, dict):
      raise DataFormatError(f'{path!r}: expected a JSON object at the top level')
    require_dir(image_dir, f'COCO image folder for split {split!r}')
    images = data.get('images')
    if (
      isinstance(images, list)
      and images
      and isinstance(images[0], dict)
      and 'sentences' in images[0]
    ):
      wanted = karpathy.get(split, (split,))
      return _coco_karpathy_records(data, path, image_dir, wanted, allow_outside_data_dir)
    return _coco_official_records(data, path, image_dir, allow_outside_data_dir)

  return records_source(load, splits.keys())


# What the XM3600 tasks read: the dataset's tokenized captions where an entry has
# them (so CIDEr sees the dataset's own segmentation; docs/metrics.md), else the raw ones.
XM3600_REFERENCE_FIELDS = ('caption/tokenized', 'caption')


def _fields(caption_field: str | Sequence[str]) -> tuple[str, ...]:
  return (caption_field,) if isinstance(caption_field, str) else tuple(caption_field)


def _caption_key(entry: Any, fields: Sequence[str]) -> str | None:
  """The first of `fields` present in a language entry (None: no captions there)."""
  if not isinstance(entry, dict):
    return None
  return next((f for f in fields if f in entry), None)


def xm3600_languages(
  captions_file: str, caption_field: str | Sequence[str] = 'caption'
) -> list[str]:
  """Sorted language codes that have captions (any of `caption_field`) in an XM3600 file."""
  rows = load_jsonl(captions_file, 'Crossmodal-3600 captions')
  fields = _fields(caption_field)
  return sorted({k for row in rows for k, v in row.items() if _caption_key(v, fields)})


def _xm3600_records(
  captions_file: str,
  image_dir: str,
  languages: Sequence[str] | None,
  caption_field: str | Sequence[str],
  image_ext: str,
  allow_outside: bool,
) -> list[Record]:
  rows = load_jsonl(captions_file, 'Crossmodal-3600 captions')
  require_dir(image_dir, 'Crossmodal-3600 image folder')
  fields = _fields(caption_field)
  present = sorted({k for row in rows for k, v in row.items() if _caption_key(v, fields)})
  if languages is None:
    langs = present
  else:
    unknown = [lang for lang in languages if lang not in present]
    if unknown:
      raise DataFormatError(
        f'languages {unknown} have no {"/".join(fields)!r} captions in {captions_file!r}; '
        f'present: {present}'
      )
    langs = list(languages)
  keys = [
    get_field(row, 'image/key', captions_file, f'line {i + 1}', str) for i, row in enumerate(rows)
  ]
  records = []
  # Language-major order keeps each language's examples contiguous (per-language eval).
  for lang in langs:
    for i, (key, row) in enumerate(zip(keys, rows, strict=True)):
      entry = row.get(lang)
      field = _caption_key(entry, fields)
      if field is None:
        continue  # this image has no captions in this language
      captions = get_field(entry, field, captions_file, f'image {key!r} [{lang!r}]', list)
      origin = f"{captions_file!r} line {i + 1} ['image/key']"
      records.append(
        Record(
          image_path=data_path(image_dir, [key + image_ext], origin, allow_outside),
          image_id=key,
          example_id=f'{key}/{lang}',
          lang=lang,
          question='',
          texts=tuple(str(c).strip() for c in captions),
          origin=origin,
        )
      )
  return records


def xm3600_source(
  captions_file: str,
  image_dir: str,
  languages: Sequence[str] | None = None,
  split: str = 'test',
  caption_field: str | Sequence[str] = 'caption',
  image_ext: str = '.jpg',
  allow_outside_data_dir: bool = False,
) -> seqio.FunctionDataSource:
  """Crossmodal-3600: one example per (image, language) with that language's captions.

  Args:
    captions_file: the JSONL file, one image per line:
      `{"image/key": "<key>", "<lang>": {"caption": [...], "caption/tokenized": [...],
      ...}, ...}`.
    image_dir: folder with the images, named `<key><image_ext>`.
    languages: language codes to keep, in this order (None: all present, sorted).
      A code without captions in the file raises ValueError listing those present
      (when the split is first read).
    split: the one seqio split name (XM3600 is an evaluation set).
    caption_field: 'caption', 'caption/tokenized' (the dataset's tokenized
      captions), or a sequence of fields tried in order per entry, e.g.
      `XM3600_REFERENCE_FIELDS` (what the registered XM3600 tasks read).
    image_ext: image file extension.
    allow_outside_data_dir: accept keys that make absolute paths or leave
      `image_dir` (otherwise DataFormatError naming the file and line).

  Returns:
    A seqio source of raw-schema examples, language-major order, `example_id`
    '<key>/<lang>'.
  """
  return records_source(
    lambda _: _xm3600_records(
      captions_file, image_dir, languages, caption_field, image_ext, allow_outside_data_dir
    ),
    [split],
  )
