"""VQA readers: VQAv2 (also OK-VQA, same file format) and TextVQA.

Both emit the raw schema of `pali_pax.tasks.readers`: one example per question,
`texts` = all human answers in file order (10 for VQAv2 / TextVQA; empty for test
splits, which have no answers), `example_id` = the question id, `lang` 'en'.
Image paths built from the files (TextVQA `image_id`, VQA `data_subtype`) stay
inside the image folder unless `allow_outside_data_dir=True`.
"""

from __future__ import annotations

from collections.abc import Mapping

import seqio

from pali_pax.tasks.readers_common import (
  DataFormatError,
  Record,
  data_path,
  get_field,
  load_json,
  records_source,
  require_dir,
)

# COCO image file names in the VQAv2 / OK-VQA releases.
VQA_IMAGE_PATTERN = 'COCO_{subtype}_{image_id:012d}.jpg'

# test-dev questions are a subset of test2015 and use its images.
_SUBTYPE_IMAGES = {'test-dev2015': 'test2015'}


def _vqav2_answers(path: str) -> dict[int, tuple[str, ...]]:
  data = load_json(path, 'VQA annotations')
  annotations = get_field(data, 'annotations', path, 'top level', list)
  answers = {}
  for i, ann in enumerate(annotations):
    where = f'annotations[{i}]'
    qid = get_field(ann, 'question_id', path, where, int)
    items = get_field(ann, 'answers', path, where, list)
    answers[qid] = tuple(
      get_field(a, 'answer', path, f'{where}.answers[{j}]', str) for j, a in enumerate(items)
    )
  return answers


def _vqav2_records(
  questions_path: str,
  annotations_path: str | None,
  image_dir: str,
  image_pattern: str | None,
  allow_outside: bool,
) -> list[Record]:
  data = load_json(questions_path, 'VQA questions')
  questions = get_field(data, 'questions', questions_path, 'top level', list)
  require_dir(image_dir, 'VQA image folder')
  pattern = image_pattern or VQA_IMAGE_PATTERN
  subtype = ''
  if '{subtype' in pattern:
    subtype = get_field(data, 'data_subtype', questions_path, 'top level', str)
    subtype = _SUBTYPE_IMAGES.get(subtype, subtype)
  answers = _vqav2_answers(annotations_path) if annotations_path else {}
  records = []
  for i, q in enumerate(questions):
    where = f'questions[{i}]'
    qid = get_field(q, 'question_id', questions_path, where, int)
    image_id = get_field(q, 'image_id', questions_path, where, int)
    text = get_field(q, 'question', questions_path, where, str)
    if annotations_path and qid not in answers:
      raise DataFormatError(
        f'question_id {qid} of {questions_path!r} has no entry in {annotations_path!r}'
      )
    origin = f"{questions_path!r} {where}['image_id'] (with 'data_subtype')"
    name = pattern.format(subtype=subtype, image_id=image_id)
    records.append(
      Record(
        image_path=data_path(image_dir, [name], origin, allow_outside),
        image_id=str(image_id),
        example_id=str(qid),
        lang='en',
        question=text,
        texts=answers.get(qid, ()),
        origin=origin,
      )
    )
  return records


def vqav2_source(
  splits: Mapping[str, tuple[str, str | None, str]],
  image_pattern: str | None = None,
  allow_outside_data_dir: bool = False,
) -> seqio.FunctionDataSource:
  """VQAv2 in the official format (OK-VQA uses the same files).

  Args:
    splits: seqio split -> (questions JSON, annotations JSON or None for test
      splits, image folder). Questions: `{"data_subtype": "train2014", "questions":
      [{"image_id", "question", "question_id"}]}`; annotations: `{"annotations":
      [{"question_id", "answers": [{"answer", "answer_confidence", "answer_id"}],
      "multiple_choice_answer", ...}]}`.
    image_pattern: file name pattern inside the image folder, formatted with
      `subtype` (the questions file's `data_subtype`; test-dev2015 -> test2015) and
      `image_id` (int). Default `VQA_IMAGE_PATTERN`, 'COCO_{subtype}_{image_id:012d}.jpg'.
    allow_outside_data_dir: accept image paths that are absolute or leave the
      image folder (otherwise DataFormatError naming the file and entry).

  Returns:
    A seqio source of raw-schema examples, one per question, all answers kept.
  """

  def load(split: str) -> list[Record]:
    questions, annotations, image_dir = splits[split]
    return _vqav2_records(questions, annotations, image_dir, image_pattern, allow_outside_data_dir)

  return records_source(load, splits.keys())


def _textvqa_records(
  path: str, image_dir: str, image_ext: str, allow_outside: bool
) -> list[Record]:
  data = load_json(path, 'TextVQA annotations')
  items = get_field(data, 'data', path, 'top level', list)
  require_dir(image_dir, 'TextVQA image folder')
  records = []
  for i, item in enumerate(items):
    where = f'data[{i}]'
    image_id = str(get_field(item, 'image_id', path, where, (str, int)))
    # Test questions come without answers; OCR tokens are not part of the schema.
    answers = item.get('answers') or []
    if not isinstance(answers, list):
      raise DataFormatError(f'{path!r}: {where}["answers"] should be a list')
    origin = f"{path!r} {where}['image_id']"
    records.append(
      Record(
        image_path=data_path(image_dir, [image_id + image_ext], origin, allow_outside),
        image_id=image_id,
        example_id=str(get_field(item, 'question_id', path, where, (int, str))),
        lang='en',
        question=get_field(item, 'question', path, where, str),
        texts=tuple(str(a) for a in answers),
        origin=origin,
      )
    )
  return records


def textvqa_source(
  splits: Mapping[str, tuple[str, str]],
  image_ext: str = '.jpg',
  allow_outside_data_dir: bool = False,
) -> seqio.FunctionDataSource:
  """TextVQA: one example per question, all 10 answers kept (none for test).

  Args:
    splits: seqio split -> (TextVQA JSON `{"data": [{"image_id", "question",
      "question_id", "answers": [...], ...}]}`, image folder with `<image_id>.jpg`).
    image_ext: image file extension.
    allow_outside_data_dir: accept image ids that make absolute paths or leave
      the image folder (otherwise DataFormatError naming the file and entry).

  Returns:
    A seqio source of raw-schema examples (`ocr_tokens` and other fields dropped).
  """

  def load(split: str) -> list[Record]:
    path, image_dir = splits[split]
    return _textvqa_records(path, image_dir, image_ext, allow_outside_data_dir)

  return records_source(load, splits.keys())
