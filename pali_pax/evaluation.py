"""Held-out evaluation of a trained job dir: metrics and decoded examples.

* `report(job_dir)`, printed by `pali-pax demo`: what paxml itself measured,
  read from the job dir (the latest eval loss and seqio decode metrics from its
  TensorBoard summaries, decoded samples from `decoder_out/`, written by
  paxml's decode programs);
* `validation_nll(predictor, task)`: an independent check through a
  `Predictor` on any weights (the learning test compares untrained and
  trained weights this way).
"""

import glob
import json
import os
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from pali_pax.checkpoint import layout


def summary_scalars(job_dir: str) -> dict[str, dict[str, tuple[int, float]]]:
  """{summary folder: {tag: (step, value)}} of the latest value of every scalar."""
  from tensorboard.backend.event_processing import event_accumulator

  out: dict[str, dict[str, tuple[int, float]]] = {}
  for folder in sorted(glob.glob(os.path.join(job_dir, 'summaries', '*'))):
    acc = event_accumulator.EventAccumulator(folder, size_guidance={'tensors': 0})
    acc.Reload()
    values = {}
    for tag in acc.Tags().get('tensors', []):
      events = acc.Tensors(tag)
      if not events:
        continue
      arr = tf.make_ndarray(events[-1].tensor_proto)
      if arr.size == 1 and np.issubdtype(arr.dtype, np.number):
        values[tag] = (events[-1].step, float(arr.reshape(())))
    out[os.path.basename(folder)] = values
  return out


def decoded_samples(job_dir: str, per_task: int = 3) -> dict[str, list[dict[str, Any]]]:
  """Latest decoder_out rows per task, picking different languages first."""
  out = {}
  for task_dir in sorted(glob.glob(os.path.join(job_dir, 'decoder_out', '*'))):
    files = glob.glob(os.path.join(task_dir, 'decoder_out_*_shard_0.jsonl'))
    if not files:
      continue
    latest = max(files, key=lambda f: int(os.path.basename(f).split('_')[2]))
    with open(latest) as f:
      rows = [json.loads(line) for line in f if line.strip()]
    seen, picked = set(), []
    for row in rows:
      prompt = str(row.get('prefix', ''))
      lang = prompt.split(':')[0][-2:]
      if lang not in seen:
        seen.add(lang)
        picked.append(row)
      if len(picked) == per_task:
        break
    out[os.path.basename(task_dir)] = picked
  return out


def report(job_dir: str) -> str:
  """Text report of the job's final eval/decode metrics and decoded samples."""
  lines = []
  scalars = summary_scalars(job_dir)
  for folder, values in scalars.items():
    if not folder.startswith(('eval_test', 'decode_test')):
      continue
    keep = {
      k: v
      for k, v in values.items()
      if not k.endswith('-weight')
      and any(
        m in k
        for m in (
          'total_loss',
          'accuracy',
          'exact_match',
          'cider',
          'map50',
          'recall50',
          'fraction_of_correct',
        )
      )
    }
    for tag, (step, value) in sorted(keep.items()):
      lines.append(f'  step {step:>6}  {folder:<44} {tag:<48} {value:9.4f}')
  if lines:
    lines.insert(0, 'paxml eval / decode metrics (latest step):')
  samples = decoded_samples(job_dir)
  if samples:
    lines.append('decoded samples (prompt -> output | reference):')
  for task, rows in samples.items():
    for row in rows:
      ref = row.get('seqio_targets', row.get('target', ''))
      lines.append(f'  [{task}] {row.get("prefix", "")} -> {row.get("decoded_substr", "")} | {ref}')
  step = layout.latest_step(job_dir)
  lines.append(f'latest checkpoint: step {step} in {os.path.join(job_dir, "checkpoints")}')
  return '\n'.join(lines)


def validation_nll(
  predictor: Any, task_name: str, n: int = 64, lengths: tuple[int, int] = (24, 16)
) -> float:
  """Mean per-token negative log-likelihood of `n` validation targets (nats)."""
  task = seqio.get_mixture_or_task(task_name)
  ds = task.get_dataset(
    {'inputs': lengths[0], 'targets': lengths[1]}, split='validation', shuffle=False
  )
  rows = list(ds.take(n).as_numpy_iterator())
  prompts = [r['inputs_pretokenized'].decode() for r in rows]
  targets = [r['targets_pretokenized'].decode() for r in rows]
  images = np.stack([r['image'] for r in rows])
  logp = predictor.score(images, prompts, targets)
  tokens = sum(len(r['targets']) for r in rows)
  return float(-np.sum(logp) / tokens)
