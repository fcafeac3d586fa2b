"""int8 serving weights against float32 on the demo's decode examples.

    python -m benchmarks.quantize [--job_dir runs/serve_tiny] [--per_task 64] [--offset 0]
        [--by_group] [--casts] [--pali3b]

Loads a trained job (e.g. `pali-pax demo --job_dir runs/serve_tiny --steps 1500`), and on
validation examples `offset .. offset + per_task` of each of the experiment's DECODE_TASKS
(the synthetic caption / VQA / OCR / detection tasks the demo decodes) compares float32
with two int8 trees (`pali_pax.serving.int8`): the serving default (lm head float16) and
everything int8 (`head='int8'`). For each it prints weight bytes and their ratio to float32,
the largest teacher-forced logit difference (on the float32 greedy outputs) against the
largest logit, and the share of greedy strings identical to float32's. For the strings
that differ it prints float32's top-1 / top-2 logit margin at the first differing token,
and for all strings how many have some token with a margin below 1e-3 / 1e-2 / 3e-2 (the
near-ties that any weight perturbation of that size can flip).

--by_group: also each group of weights (ViT attention, ..., lm head) int8 alone.
--casts: also the same weights rounded to bfloat16 / float16 (16-bit yardsticks).
--pali3b: the weight-bytes ratios the same rules give at PaLI-3B's shapes (abstract).
"""

import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import seqio

from pali_pax.core import batch as batch_lib
from pali_pax.core import params as params_lib
from pali_pax.fiddle_configs import pali as pali_configs
from pali_pax.inference import Predictor
from pali_pax.serving import int8
from pali_pax.tasks import metrics_detection

# One group of weights each; a weight path (joined by '/') belongs to the first that matches.
GROUPS: dict[str, Callable[[str], bool]] = {
  'vit_attention': lambda p: p.startswith('vit/transformer') and '/self_attention/' in p,
  'vit_ff': lambda p: p.startswith('vit/transformer') and '/ff_layer/' in p,
  'patch_embedding': lambda p: p.startswith('vit/patch_embedding'),
  'fusion_projection': lambda p: p.startswith('fusion/'),
  'encoder_attention': lambda p: p.startswith('mt5/encoder') and '/self_attention/' in p,
  'encoder_ff': lambda p: p.startswith('mt5/encoder') and '/ff/' in p,
  'decoder_self_attention': lambda p: p.startswith('mt5/decoder') and '/self_attention/' in p,
  'decoder_cross_attention': lambda p: p.startswith('mt5/decoder') and '/cross_attention/' in p,
  'decoder_ff': lambda p: p.startswith('mt5/decoder') and '/ff/' in p,
  'token_embedding': lambda p: p.startswith('mt5/token_emb'),
  'lm_head': lambda p: p.startswith('mt5/softmax'),
}
MARGINS = (1e-3, 1e-2, 3e-2)


def examples(exp: object, per_task: int, offset: int = 0) -> list[dict]:
  """Validation examples offset .. offset + per_task of each DECODE_TASK (seqio, preprocessed)."""
  exp.register_tasks()
  lengths = {'inputs': exp.INPUT_LEN, 'targets': exp.TARGET_LEN}
  out = []
  for name in exp.DECODE_TASKS:
    task = seqio.get_mixture_or_task(name)
    ds = task.get_dataset(sequence_length=lengths, split='validation', shuffle=False)
    for ex in ds.skip(offset).take(per_task).as_numpy_iterator():
      out.append({**ex, 'task': name})
  return out


def only_group(params: dict, group: str) -> dict:
  """`params` with only the weights of GROUPS[group] int8 (per-channel, as the table)."""

  def one(path: tuple, leaf: np.ndarray) -> object:
    p = int8.path_names(path)
    axes = int8.reduced_axes(p, np.ndim(leaf))
    return leaf if axes is None or not GROUPS[group]('/'.join(p)) else int8.quantize(leaf, axes)

  return jax.tree_util.tree_map_with_path(one, params)


def rounded(params: dict, dtype: object) -> dict:
  """float32 `params` whose int8-table weights were rounded to `dtype` (a 16-bit yardstick)."""

  def one(path: tuple, leaf: np.ndarray) -> np.ndarray:
    p = int8.path_names(path)
    if int8.storage(p, np.ndim(leaf), 'int8') == 'float32':
      return leaf
    return np.asarray(jnp.asarray(leaf).astype(dtype).astype(jnp.float32))

  return jax.tree_util.tree_map_with_path(one, params)


def reference(f32: Predictor, rows: list[dict], steps: int, batch: int) -> list[dict]:
  """Per batch: the inputs, float32 greedy ids, teacher-forced logits [B, T, V] and the mask."""
  out = []
  for start in range(0, len(rows), batch):
    chunk = rows[start : start + batch]
    ids = batch_lib.pad_ids([r['inputs'] for r in chunk])
    images = np.stack([r['image'] for r in chunk])
    has = np.array([r['has_image'] for r in chunk], np.float32)
    kw = {'images': images, 'max_decode_steps': steps, 'has_image': has}
    a = f32.generate_ids(ids, **kw)
    dec = batch_lib.pad_ids([np.concatenate([[batch_lib.DECODER_START_ID], row[:-1]]) for row in a])
    model_batch = f32._batch(ids, None, images, dec, has_image=has)
    logits = np.asarray(f32._jit_logits(f32.params, model_batch))
    mask = model_batch.decoder_target_tokens != batch_lib.PAD_ID  # real positions only
    mask[np.arange(len(a)), [len(r) - 1 for r in a]] = True  # eos position
    out.append(
      {
        'ids': ids,
        'kw': kw,
        'out': a,
        'batch': model_batch,
        'logits': logits,
        'mask': mask,
        'tasks': [r['task'] for r in chunk],
      }
    )
  return out


def top2_margin(logits: np.ndarray) -> np.ndarray:
  """logits [..., V] -> top-1 minus top-2 logit [...]."""
  top = np.partition(logits, -2, axis=-1)
  return top[..., -1] - top[..., -2]


def compare(f32: Predictor, q: Predictor, ref: list[dict]) -> dict:
  """Greedy agreement, logit error and float32 margins at the first differing token."""
  same = n = 0
  per_task: dict[str, list[int]] = {}  # task -> [identical, n]
  max_err = max_logit = 0.0
  margins = []
  same_boxes: list[bool] = []  # per changed detection string
  for r in ref:
    b = q.generate_ids(r['ids'], **r['kw'])
    lq = np.asarray(q._jit_logits(q.params, r['batch']))
    max_err = max(max_err, float(np.abs(r['logits'] - lq)[r['mask']].max()))
    max_logit = max(max_logit, float(np.abs(r['logits'][r['mask']]).max()))
    m = top2_margin(r['logits'])
    for i, (x, y) in enumerate(zip(r['out'], b, strict=True)):
      n += 1
      counts = per_task.setdefault(r['tasks'][i], [0, 0])
      counts[1] += 1
      if f32.vocab.decode(x.tolist()) == f32.vocab.decode(y.tolist()):
        same += 1
        counts[0] += 1
        continue
      if 'detection' in r['tasks'][i]:
        same_boxes.append(
          _same_detections(f32.vocab.decode(x.tolist()), f32.vocab.decode(y.tolist()))
        )
      k = min(len(x), len(y))
      first = next((j for j in range(k) if x[j] != y[j]), k)
      margins.append(float(m[i, min(first, m.shape[1] - 1)]))
  return {
    'identical': same,
    'n': n,
    'max_err': max_err,
    'max_logit': max_logit,
    'margins': margins,
    'per_task': per_task,
    'detection_same_boxes': [sum(same_boxes), len(same_boxes)],
  }


def _same_detections(a: str, b: str) -> bool:
  """Whether detection text `b` finds `a`'s boxes: as many, each matched (same label,
  IoU >= 0.5, the metric's threshold) with `a`'s as the ground truth."""
  boxes_a, _ = metrics_detection.parse_boxes(a)
  boxes_b, _ = metrics_detection.parse_boxes(b)
  return len(boxes_a) == len(boxes_b) and all(metrics_detection.match_image(boxes_a, boxes_b))


def near_ties(ref: list[dict]) -> dict[float, int]:
  """{t: number of float32 strings with some token's top-1 / top-2 margin below t}."""
  lows = np.concatenate([np.where(r['mask'], top2_margin(r['logits']), np.inf).min(1) for r in ref])
  return {t: int((lows < t).sum()) for t in MARGINS}


def report(name: str, res: dict, ratio: float | None = None) -> None:
  pct = 100 * res['identical'] / res['n']
  size = '' if ratio is None else f'  bytes {ratio:.3f}x'
  print(
    f'{name:24s} identical {res["identical"]}/{res["n"]} = {pct:.1f}%{size}'
    f'  max |dlogit| {res["max_err"]:.4f} (largest |logit| {res["max_logit"]:.2f})'
  )
  tasks = ', '.join(f'{t} {a}/{b}' for t, (a, b) in res['per_task'].items())
  print(f'{"":24s} identical per task: {tasks}')
  kept, changed = res['detection_same_boxes']
  if changed:
    print(f"{'':24s} changed detection strings with float32's boxes (IoU >= 0.5): {kept}/{changed}")
  if res['margins']:
    print(f'{"":24s} float32 margins where they differ: {np.round(sorted(res["margins"]), 4)}')


def pali3b_ratios() -> dict[str, float]:
  """{head: planned int8 bytes / float32 bytes} at PaLI-3B's shapes (nothing allocated)."""
  cfg = pali_configs.pali_config('3b')
  batch = batch_lib.dummy_batch(cfg.vit_tpl.image_size)
  shapes = params_lib.abstract_params(cfg, batch, method='compute_predictions')
  f32 = 4 * params_lib.count(shapes)
  return {h: int8.planned_bytes(shapes, h) / f32 for h in int8.HEAD_DTYPES}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--job_dir', default='runs/serve_tiny')
  parser.add_argument('--per_task', type=int, default=64)
  parser.add_argument('--offset', type=int, default=0, help='skip this many examples per task')
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--by_group', action='store_true', help='each group int8 alone, too')
  parser.add_argument('--casts', action='store_true', help='bfloat16 / float16 weights, too')
  parser.add_argument('--pali3b', action='store_true', help='byte ratios at PaLI-3B shapes')
  args = parser.parse_args()
  t0 = time.time()
  if args.pali3b:
    for head, ratio in pali3b_ratios().items():
      print(f'PaLI-3B weight bytes, lm head {head}: {ratio:.3f}x float32')
  f32 = Predictor.from_checkpoint(args.job_dir)
  params = jax.device_get(f32.params)
  exp = f32.experiment
  fb = int8.weight_bytes(params)
  print(f'job {args.job_dir} ({type(exp).__name__}, MODEL {exp.MODEL}), float32 bytes {fb:,}')
  rows = examples(exp, args.per_task, args.offset)
  print(f'{len(rows)} examples ({args.per_task} per task from {args.offset}: {exp.DECODE_TASKS})')
  ref = reference(f32, rows, exp.MAX_DECODE_LEN, args.batch)
  ties = ', '.join(f'< {t:g}: {c}' for t, c in near_ties(ref).items())
  print(f'float32 strings with a token whose top-1 / top-2 margin is {ties}')
  for head in int8.HEAD_DTYPES:
    tree = int8.quantize_params(params, head)
    q = Predictor(f32.model_cfg, tree, f32.vocab)
    report(f'int8, lm head {head}', compare(f32, q, ref), int8.weight_bytes(tree) / fb)
  if args.casts:
    for name, dtype in (('bfloat16', jnp.bfloat16), ('float16', jnp.float16)):
      q = Predictor(f32.model_cfg, rounded(params, dtype), f32.vocab)
      report(f'{name} weights', compare(f32, q, ref))
  if args.by_group:
    for group in GROUPS:
      q = Predictor(f32.model_cfg, only_group(params, group), f32.vocab)
      report(f'only {group}', compare(f32, q, ref))
  print(f'wall {time.time() - t0:.0f} s')


if __name__ == '__main__':
  main()
