"""int8 serving weights against float32 on the demo's decode examples.

    python -m benchmarks.quantize [--job_dir runs/serve_tiny] [--per_task 64]

Loads a trained job (e.g. `pali-pax demo --job_dir runs/serve_tiny --steps 1500`) twice,
float32 and `quantize='int8'` (`pali_pax.serving.int8`), and on the validation examples
of the experiment's DECODE_TASKS (the synthetic caption / VQA / OCR / detection tasks the
demo decodes) prints: weight bytes and their ratio to float32, the largest teacher-forced
logit difference (on the float32 greedy outputs) against the largest logit, and the share
of greedy strings identical between the two.
"""

import argparse
import time

import jax
import numpy as np
import seqio

from pali_pax.core import batch as batch_lib
from pali_pax.inference import Predictor
from pali_pax.serving import int8


def examples(exp: object, per_task: int) -> list[dict]:
  """The first `per_task` validation examples of each DECODE_TASK (seqio, preprocessed)."""
  exp.register_tasks()
  lengths = {'inputs': exp.INPUT_LEN, 'targets': exp.TARGET_LEN}
  out = []
  for name in exp.DECODE_TASKS:
    task = seqio.get_mixture_or_task(name)
    ds = task.get_dataset(sequence_length=lengths, split='validation', shuffle=False)
    for ex in ds.take(per_task).as_numpy_iterator():
      out.append({**ex, 'task': name})
  return out


def compare(f32: Predictor, q8: Predictor, rows: list[dict], steps: int, batch: int) -> dict:
  """Greedy agreement and logit error over `rows`, in batches of `batch`."""
  same, max_err, max_logit = 0, 0.0, 0.0
  for start in range(0, len(rows), batch):
    chunk = rows[start : start + batch]
    ids = batch_lib.pad_ids([r['inputs'] for r in chunk])
    images = np.stack([r['image'] for r in chunk])
    has = np.array([r['has_image'] for r in chunk], np.float32)
    kw = {'images': images, 'max_decode_steps': steps, 'has_image': has}
    a, b = f32.generate_ids(ids, **kw), q8.generate_ids(ids, **kw)
    same += sum(
      f32.vocab.decode(x.tolist()) == f32.vocab.decode(y.tolist())
      for x, y in zip(a, b, strict=True)
    )
    dec = batch_lib.pad_ids([np.concatenate([[batch_lib.DECODER_START_ID], row[:-1]]) for row in a])
    model_batch = f32._batch(ids, None, images, dec, has_image=has)
    la = np.asarray(f32._jit_logits(f32.params, model_batch))
    lb = np.asarray(q8._jit_logits(q8.params, model_batch))
    mask = model_batch.decoder_target_tokens != batch_lib.PAD_ID  # real positions only
    mask[np.arange(len(a)), [len(r) - 1 for r in a]] = True  # eos position
    max_err = max(max_err, float(np.abs(la - lb)[mask].max()))
    max_logit = max(max_logit, float(np.abs(la[mask]).max()))
  return {'identical': same, 'n': len(rows), 'max_err': max_err, 'max_logit': max_logit}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--job_dir', default='runs/serve_tiny')
  parser.add_argument('--per_task', type=int, default=64)
  parser.add_argument('--batch', type=int, default=32)
  args = parser.parse_args()
  t0 = time.time()
  f32 = Predictor.from_checkpoint(args.job_dir)
  q8 = Predictor(f32.model_cfg, jax.device_get(f32.params), f32.vocab, quantize='int8')
  exp = f32.experiment
  fb, qb = int8.weight_bytes(f32.params), int8.weight_bytes(q8.params)
  print(f'job {args.job_dir} ({type(exp).__name__}, MODEL {exp.MODEL})')
  print(f'weight bytes: float32 {fb:,}  int8 {qb:,}  ratio {qb / fb:.3f}')
  share = int8.quantized_fraction(jax.device_get(q8.params))
  print(f'parameters stored as int8: {100 * share:.1f}%')
  rows = examples(exp, args.per_task)
  res = compare(f32, q8, rows, exp.MAX_DECODE_LEN, args.batch)
  print(
    f'max |logit int8 - float32|: {res["max_err"]:.4f} (largest |logit| {res["max_logit"]:.2f}, '
    f'relative {res["max_err"] / res["max_logit"]:.2e})'
  )
  pct = 100 * res['identical'] / res['n']
  print(
    f'greedy strings identical: {res["identical"]}/{res["n"]} = {pct:.1f}%  ({exp.DECODE_TASKS})'
  )
  print(f'wall {time.time() - t0:.0f} s')


if __name__ == '__main__':
  main()
