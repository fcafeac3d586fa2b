"""Your own data: the pali_pax JSONL format (docs/data_format.md), one example per line.

    {"image": "imgs/a.jpg", "task": "caption", "lang": "fr", "targets": ["un chat", "le chat"]}
    {"image": "imgs/b.jpg", "task": "vqa", "question": "What colour?", "targets": ["red"]}
    {"image": "imgs/c.png", "prompt": "Describe the chart:", "targets": ["sales rise"]}

Fields (unknown ones are an error, so a typo such as "target" is caught):

  image     path of the image, relative to the data directory (absolute paths are
            kept); omitted or "" for a text-only example.
  task      key of `metrics.METRICS_BY_TASK` (how predictions are scored). Without
            "prompt" it also picks the PaLI prompt template: caption, vqa, textvqa
            (need "question"), ocr. With "prompt" any key works; default caption.
  prompt    the model input verbatim (overrides the template).
  question  the question of a vqa / textvqa example.
  lang      language code of the prompt and targets (`prompts.LANGUAGES`); default en.
  targets   one reference string or a list of them (all are used by the metrics;
            training picks one: at random, or the most frequent for vqa / textvqa).
  id        example id, unique in the file; default '<file name>:<line>'.

Each example is a raw-schema record (`pali_pax.tasks.readers`) whose `question` holds
the finished prompt, so the seqio task takes it verbatim. A bad line is a
`DataFormatError` naming the file, the line and the field; a missing image is
reported the same way when the split is first read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import seqio
import tensorflow as tf

from pali_pax.tasks import metrics, prompts
from pali_pax.tasks.readers_common import (
  DataFormatError,
  Record,
  data_path,
  iter_jsonl,
  records_source,
)

FIELDS = ('image', 'task', 'prompt', 'question', 'lang', 'targets', 'id')
# Tasks with a built-in prompt template (without a "prompt" field).
TEMPLATE_TASKS = ('caption', 'vqa', 'textvqa', 'ocr')
DEFAULT_TASK = 'caption'
WHAT = 'JSONL examples'


@dataclasses.dataclass(frozen=True)
class JsonlExample:
  """One parsed line: its task (metric family) and its raw-schema record."""

  task: str
  record: Record


def _str_field(row: dict[str, Any], key: str, where: str, default: str = '') -> str:
  value = row.get(key, default)
  if not isinstance(value, str):
    raise DataFormatError(f'{where}: "{key}" should be a string, got {type(value).__name__}')
  return value.strip()


def _targets(row: dict[str, Any], where: str) -> tuple[str, ...]:
  if 'targets' not in row:
    raise DataFormatError(f'{where}: no "targets" field (one string or a list of strings)')
  value = row['targets']
  value = [value] if isinstance(value, str) else value
  if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
    raise DataFormatError(
      f'{where}: "targets" should be a string or a non-empty list of strings, got {value!r:.80}'
    )
  return tuple(t.strip() for t in value)


def _prompt(row: dict[str, Any], task: str, lang: str, where: str) -> str:
  if 'prompt' in row:
    prompt = _str_field(row, 'prompt', where)
    if not prompt:
      raise DataFormatError(f'{where}: "prompt" is empty')
    return prompt
  if task not in TEMPLATE_TASKS:
    raise DataFormatError(
      f'{where}: task {task!r} has no prompt template ({", ".join(TEMPLATE_TASKS)} do); '
      'give the model input in a "prompt" field'
    )
  if task == 'caption':
    return prompts.caption_prompt(lang)
  if task == 'ocr':
    return prompts.ocr_prompt()
  question = _str_field(row, 'question', where)
  if not question:
    raise DataFormatError(f'{where}: task {task!r} needs a non-empty "question" (or a "prompt")')
  return prompts.vqa_prompt(question, lang)


def parse_line(
  row: dict[str, Any], data_dir: str, path: str, lineno: int, allow_outside_data_dir: bool = False
) -> JsonlExample:
  """One JSONL object -> JsonlExample; DataFormatError naming `path` and `lineno`."""
  where = f'{path!r} line {lineno}'
  unknown = sorted(set(row) - set(FIELDS))
  if unknown:
    raise DataFormatError(f'{where}: unknown field(s) {unknown}; valid fields: {list(FIELDS)}')
  task = _str_field(row, 'task', where, DEFAULT_TASK)
  if task not in metrics.METRICS_BY_TASK:
    raise DataFormatError(
      f'{where}: unknown task {task!r}; valid tasks: {sorted(metrics.METRICS_BY_TASK)}'
    )
  try:
    lang = prompts.check_language(_str_field(row, 'lang', where, 'en'))
  except ValueError as e:
    raise DataFormatError(f'{where}: {e}') from e
  image = _str_field(row, 'image', where)
  image_path = data_path(data_dir, [image], where, allow_outside_data_dir) if image else ''
  if image_path and not tf.io.gfile.exists(image_path):
    raise DataFormatError(f'{where}: image file not found: {image_path!r}')
  example_id = _str_field(row, 'id', where, f'{os.path.basename(path)}:{lineno}')
  record = Record(
    image_path=image_path,
    image_id=image,
    example_id=example_id,
    lang=lang,
    question=_prompt(row, task, lang, where),
    texts=_targets(row, where),
    origin=where,
  )
  return JsonlExample(task, record)


def read_jsonl_examples(
  path: str, data_dir: str, allow_outside_data_dir: bool = False
) -> list[JsonlExample]:
  """Every example of one JSONL file, in file order (ids checked unique)."""
  out = []
  seen: dict[str, int] = {}
  for lineno, row in iter_jsonl(path, WHAT):
    ex = parse_line(row, data_dir, path, lineno, allow_outside_data_dir)
    first = seen.setdefault(ex.record.example_id, lineno)
    if first != lineno:
      raise DataFormatError(
        f'{path!r} line {lineno}: id {ex.record.example_id!r} already used on line {first}'
      )
    out.append(ex)
  if not out:
    raise DataFormatError(f'{path!r}: no examples (one JSON object per line expected)')
  return out


def jsonl_task_counts(
  paths: Sequence[str], data_dir: str, allow_outside_data_dir: bool = False
) -> dict[str, int]:
  """{task: number of examples} over the files, in first-seen order (reads them fully)."""
  counts: dict[str, int] = {}
  for path in paths:
    for ex in read_jsonl_examples(path, data_dir, allow_outside_data_dir):
      counts[ex.task] = counts.get(ex.task, 0) + 1
  return counts


def jsonl_source(
  splits: Mapping[str, str],
  data_dir: str,
  task: str | None = None,
  allow_outside_data_dir: bool = False,
) -> seqio.FunctionDataSource:
  """The examples of one task (None: all) from JSONL files, as a raw-schema seqio source.

  Args:
    splits: seqio split -> JSONL file.
    data_dir: folder the "image" paths are relative to.
    task: keep only the lines of this task (their metrics differ from the others').
    allow_outside_data_dir: accept image paths that are absolute or leave `data_dir`.

  Returns:
    A seqio source of raw-schema examples; `question` is the finished prompt,
    `image_id` the image path as written in the file.
  """

  def load(split: str) -> list[Record]:
    examples = read_jsonl_examples(splits[split], data_dir, allow_outside_data_dir)
    return [ex.record for ex in examples if task is None or ex.task == task]

  return records_source(load, splits.keys())
