"""`pali-pax eval --job_dir DIR --task NAME [--split S] [--step N] [--out DIR] [--exp NAME]`.

Decodes every example of a split (no sampling of batches) with the job's model
(`Predictor.from_checkpoint`: the experiment, overrides and vocabulary recorded
in the job dir, or --exp) and the experiment's decode settings (greedy, MAX_DECODE_LEN
tokens, INPUT_LEN prompt tokens, as paxml's decode programs), scores them with
the task's metric fns (`tasks.metrics.METRICS_BY_TASK`, over all references) and
writes into --out (default DIR/eval):

  <task>.<split>.step<N>.predictions.json  [{id, prompt, prediction, references}, ...]
  <task>.<split>.step<N>.metrics.json      {experiment, task, split, step, num_examples, metrics}

CIDEr appears twice, labelled: `cider_pycocoevalcap` (the value pycocoevalcap's
Cider returns, ~0-1 for ordinary captions, 1.491 for "149.1") and `cider_x100`
(as papers report it). A mixture (e.g. pali_xm3600) is evaluated task by task.
"""

import argparse
import json
import os
from typing import Any

import numpy as np
import seqio
from tqdm import tqdm

from pali_pax import compile_cache
from pali_pax.checkpoint import reading
from pali_pax.cli import common
from pali_pax.core import batch as batch_lib
from pali_pax.core import errors
from pali_pax.inference import Predictor


def label_metrics(metrics: dict[str, float]) -> dict[str, float]:
  """Our metric fns report CIDEr x100 as 'cider'; name both scales explicitly."""
  out = dict(metrics)
  if 'cider' in out:
    x100 = out.pop('cider')
    out['cider_pycocoevalcap'] = x100 / 100.0
    out['cider_x100'] = x100
  return out


def _example_id(ex: dict[str, Any], index: int) -> str:
  for key in ('example_id', 'image_id'):
    if key in ex and np.asarray(ex[key]).size:
      value = np.asarray(ex[key]).item()
      return value.decode() if isinstance(value, bytes) else str(value)
  return str(index)


def decode_split(predictor: Any, task: Any, split: str) -> list[dict[str, Any]]:
  """[{id, prompt, prediction, references}] of every example of `split` of a seqio Task."""
  exp = predictor.experiment
  if split not in task.splits:
    raise errors.InputValidationError(
      f'--split: {task.name} has no split {split!r}; splits: {", ".join(task.splits)}'
    )
  lengths = {'inputs': exp.INPUT_LEN, 'targets': exp.TARGET_LEN}
  ds = task.get_dataset(lengths, split=split, shuffle=False, num_epochs=1)
  vocab = task.output_features['targets'].vocabulary
  rows, size = [], exp.EVAL_BATCH_SIZE
  examples = list(ds.as_numpy_iterator())
  if not examples:
    raise errors.InputValidationError(f'--split: {task.name} [{split}] has no examples')
  for start in tqdm(range(0, len(examples), size), desc=f'decoding {task.name}', unit='batch'):
    chunk = examples[start : start + size]
    # The last batch is padded with copies so every batch has one shape (one compile).
    padded = chunk + [chunk[-1]] * (size - len(chunk))
    ids = batch_lib.pad_ids([ex['inputs'] for ex in padded], exp.INPUT_LEN, 'inputs')
    images = np.stack([ex['image'] for ex in padded])
    # Text-only rows (span corruption, text tasks of a JSONL set) carry a blank image
    # that the model must not see, as in paxml's decode of the same examples.
    has_image = np.stack([ex['has_image'] for ex in padded])
    outs = predictor.generate_ids(
      ids, images=images, max_decode_steps=exp.MAX_DECODE_LEN, has_image=has_image
    )
    for k, (ex, out) in enumerate(zip(chunk, outs, strict=False)):
      text = vocab.decode([int(t) for t in out if t != batch_lib.EOS_ID])
      refs = task.postprocess_fn(ex['targets_pretokenized'], example=ex, is_target=True)
      rows.append(
        {
          'id': _example_id(ex, start + k),
          'prompt': ex['inputs_pretokenized'].decode(),
          'prediction': task.postprocess_fn(text, example=ex, is_target=False),
          'references': [refs] if isinstance(refs, str) else list(refs),
        }
      )
  return rows


def score(task: Any, rows: list[dict[str, Any]]) -> dict[str, float]:
  """The task's metric fns over every row (all references), CIDEr labelled."""
  targets = [r['references'] for r in rows]
  predictions = [r['prediction'] for r in rows]
  metrics: dict[str, float] = {}
  for fn in task.predict_metric_fns:
    metrics.update({k: float(v) for k, v in fn(targets, predictions).items()})
  return label_metrics(metrics)


def evaluate(
  job_dir: str,
  task: str,
  split: str | None = None,
  step: int | None = None,
  out: str | None = None,
  experiment: str | None = None,
) -> dict[str, dict[str, Any]]:
  """Decodes and scores `task` (or each task of a mixture); returns {task: metrics record}."""
  step, _ = reading.find_step(job_dir, step)  # newest intact, as every reader picks it
  predictor = Predictor.from_checkpoint(job_dir, step, experiment=experiment)
  exp = predictor.experiment
  exp.register_tasks()
  split = exp.EVAL_SPLIT if split is None else split
  try:
    provider = seqio.get_mixture_or_task(task)
  except ValueError as e:
    raise errors.InputValidationError(
      f'--task: unknown task {task!r} for {type(exp).__name__}: {e}'
    ) from e
  tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
  out = out or os.path.join(job_dir, 'eval')
  os.makedirs(out, exist_ok=True)
  records = {}
  for t in tasks:
    rows = decode_split(predictor, t, split)
    record = {
      'job_dir': os.path.abspath(job_dir),
      'experiment': type(exp).__name__,
      'task': t.name,
      'split': split,
      'step': step,
      'num_examples': len(rows),
      'decoding': {'method': 'greedy', 'max_decode_len': exp.MAX_DECODE_LEN},
      'metrics': score(t, rows),
    }
    stem = os.path.join(out, f'{t.name}.{split}.step{step}')
    with open(f'{stem}.predictions.json', 'w') as f:
      json.dump(rows, f, indent=1, ensure_ascii=False)
    with open(f'{stem}.metrics.json', 'w') as f:
      json.dump(record, f, indent=1)
    record['files'] = [f'{stem}.predictions.json', f'{stem}.metrics.json']
    records[t.name] = record
  return records


def describe(records: dict[str, dict[str, Any]]) -> str:
  """The printed summary: metrics per task and where the files are."""
  lines = []
  for name, r in records.items():
    lines.append(f'{name} [{r["split"]}] step {r["step"]}: {r["num_examples"]} examples')
    for key, value in sorted(r['metrics'].items()):
      label = {
        'cider_pycocoevalcap': 'CIDEr (pycocoevalcap value)',
        'cider_x100': 'CIDEr x100 (as papers report)',
      }.get(key, key)
      lines.append(f'  {label:<32} {value:10.4f}')
    lines += [f'  wrote {f}' for f in r['files']]
  return '\n'.join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The flags of `pali-pax eval`."""
  common.add_job_dir(p, positional=True)
  p.add_argument('--task', required=True, help='seqio task or mixture (see pali-pax tasks)')
  p.add_argument('--split', default=None, help="default: the experiment's EVAL_SPLIT")
  common.add_step(p)
  common.add_out(p, help='output folder (default: JOB_DIR/eval)')
  common.add_exp(p)
  common.add_no_cache(p)


def run(args: argparse.Namespace) -> int:
  """`pali-pax eval`: writes the files, prints the metrics."""
  compile_cache.apply(args.no_compilation_cache)
  job_dir = common.job_dir(args)
  records = evaluate(job_dir, args.task, args.split, args.step, args.out, args.exp)
  print(describe(records))
  return 0
