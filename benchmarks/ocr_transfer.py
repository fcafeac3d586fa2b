"""Does the demo's reading transfer? TrueType words, fine-tuned as TextVQA (issue 23 item 2).

    python -m benchmarks.ocr_transfer [--seed 0] [--steps 5000] [--pretrain_steps 10000]
                                      [--base JOB_DIR] [--scratch] [--root DIR]

The recipe (`run_recipe`, shared with tests/fiddle_configs/test_ocr_transfer_slow.py),
as a user would fine-tune on their own scene text:

1. Pretrain the tiny model as `make demo` does: `pali-pax pretrain-vit`, then `pali-pax
   train` (the ViT frozen; `pretrain_steps` 10,000 as the demo) of `--pretrain_exp`
   (default PaliTinySyntheticVariedOcr: the demo's recipe with its OCR words in random
   colours and sizes), or take an existing job dir (`--base`).
2. Write `benchmarks.ocr_transfer_data`: the demo's 40 OCR words drawn with another
   font (DejaVu Sans) at a random position in one of its STYLES (`--style`: 'rgb'
   random colours and sizes, the default; 'gray' random gray levels and sizes; 'plain'
   black on light gray at 12 px), 32 px, in the TextVQA 0.5.1 format, with a held-out
   val split of other renderings.
3. Fine-tune PaliFinetuneTextVqaTiny from the pretrained checkpoints (INIT_FROM,
   TRAINABLE 'all', the tiny preset's Adam 3e-3) with `pali-pax train` (= paxml.main).
   `--scratch` also trains the same steps from a random initialisation.
4. Score the fine-tuned job, and its step 0 (= the pretrained model: zero-shot), on
   every val example with `pali-pax eval --task pali_textvqa`; exact match is the share
   of predictions equal to the word.

What it showed (docs/demo_recipe.md, "Reading beyond the demo's generator"): from
scratch the tiny model stays at chance (2.5%); from the demo's old recipe (the ViT
trained with the mixture) it read the 'plain' style but only 17% of 'rgb'; from a
pretrained, frozen ViT that saw varied words, 'rgb' is read at 98%.
"""

import argparse
import dataclasses
import os
import sys
import time
from typing import Any

from benchmarks import machine, ocr_transfer_data
from benchmarks.transfer import pretrain, scored, step_time, train_job

FINETUNE_EXP = 'PaliFinetuneTextVqaTiny'
EVAL_TASK = 'pali_textvqa'


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the recipe runs.

  Attributes:
    steps: fine-tune steps.
    seed: data-set seed and the fine-tune's SEED (batch order).
    pretrain_exp: the experiment pretrained when no base job dir is given: the demo's
      recipe with its OCR words in random colours and sizes (ViT pretraining and mixture).
    pretrain_steps: its steps.
    n_train / n_val: renderings per split.
    batch_size: fine-tune batch.
    style: how the words are drawn (`ocr_transfer_data.STYLES`).
    scratch: also fine-tune from a random initialisation.
  """

  steps: int = 5000
  seed: int = 0
  pretrain_exp: str = 'PaliTinySyntheticVariedOcr'
  pretrain_steps: int = 10_000
  n_train: int = 24000
  n_val: int = 256
  batch_size: int = 32
  style: str = 'rgb'
  scratch: bool = False


@dataclasses.dataclass
class Arm:
  """One scored model: exact match (0-100), seconds per train step, train wall seconds."""

  exact_match: float
  step_time_s: float | None
  train_wall_s: float | None
  metrics: dict[str, float]


def exact_match(job: str, step: int | None = None, out: str | None = None) -> dict[str, float]:
  """`pali-pax eval` metrics of `job` plus 'exact_match': % of predictions equal to the word."""
  metrics, rows = scored(job, EVAL_TASK, step, out)
  hits = [r['prediction'].strip() == r['references'][0] for r in rows]
  return {**metrics, 'exact_match': 100.0 * sum(hits) / len(hits), 'n': float(len(hits))}


def finetune(job: str, data: str, base: str | None, s: Settings) -> tuple[str, float]:
  """`pali-pax train` of FINETUNE_EXP (from `base`'s checkpoints unless None): (log, wall s)."""
  overrides: dict[str, Any] = {
    'DATA_DIR': data,
    'NUM_TRAIN_STEPS': s.steps,
    'CHECKPOINT_EVERY': s.steps,
    'EVAL_EVERY': s.steps,
    'SEED': s.seed,
    'BATCH_SIZE': s.batch_size,
    'EVAL_BATCH_SIZE': 64,
  }
  if base is not None:
    overrides['INIT_FROM'] = os.path.join(base, 'checkpoints')
  return train_job(FINETUNE_EXP, job, overrides)


def run_recipe(root: str, s: Settings, base: str | None = None, log: Any = print) -> dict[str, Any]:
  """Pretrain (unless `base`), write the data, fine-tune, evaluate; see the module doc.

  Returns {'arms': {'zero_shot' | 'finetuned' | 'scratch': Arm}, 'base', 'data', 'wall_s',
  'load_avg'}.
  """
  t0 = time.time()
  os.makedirs(root, exist_ok=True)
  log(f'[ocr_transfer] writing {s.n_train} + {s.n_val} renderings')
  data = ocr_transfer_data.write(os.path.join(root, 'data'), s.seed, s.n_train, s.n_val, s.style)
  if base is None:
    log(f'[ocr_transfer] pretraining {s.pretrain_exp} for {s.pretrain_steps} steps')
    base = pretrain(os.path.join(root, 'base'), s.pretrain_steps, s.pretrain_exp)
  arms: dict[str, Arm] = {}
  starts = {'finetuned': base, **({'scratch': None} if s.scratch else {})}
  for name, init in starts.items():
    job = os.path.join(root, name)
    log(f'[ocr_transfer] fine-tuning {name} for {s.steps} steps')
    train_log, wall = finetune(job, data, init, s)
    metrics = exact_match(job)
    arms[name] = Arm(metrics['exact_match'], step_time(train_log), wall, metrics)
    log(f'[ocr_transfer] {name}: exact match {metrics["exact_match"]:.1f}%')
  zero = exact_match(os.path.join(root, 'finetuned'), 0, os.path.join(root, 'zero_shot'))
  arms = {'zero_shot': Arm(zero['exact_match'], None, None, zero), **arms}
  return {
    'arms': arms,
    'base': base,
    'data': data,
    'wall_s': time.time() - t0,
    'load_avg': os.getloadavg(),
  }


def main(argv: list[str] | None = None) -> int:
  """Runs the recipe once and prints a row per arm, the machine and the load."""
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--steps', type=int, default=Settings.steps, help='fine-tune steps')
  p.add_argument('--seed', type=int, default=Settings.seed, help='data and batch seed')
  p.add_argument('--pretrain_exp', default=Settings.pretrain_exp)
  p.add_argument('--pretrain_steps', type=int, default=Settings.pretrain_steps)
  p.add_argument('--base', default=None, help='a pretrained PaliTinySynthetic job dir')
  p.add_argument('--style', default=Settings.style, choices=sorted(ocr_transfer_data.STYLES))
  p.add_argument('--scratch', action='store_true', help='also fine-tune from random weights')
  p.add_argument('--root', default=None, help='work dir (default runs/ocr_transfer_seed<S>)')
  args = p.parse_args(argv)
  s = Settings(
    steps=args.steps,
    seed=args.seed,
    pretrain_exp=args.pretrain_exp,
    pretrain_steps=args.pretrain_steps,
    style=args.style,
    scratch=args.scratch,
  )
  root = args.root or os.path.join('runs', f'ocr_transfer_seed{args.seed}')
  info = machine.describe()
  r = run_recipe(root, s, base=args.base, log=lambda m: print(m, file=sys.stderr, flush=True))
  print('| model | exact match on held-out renderings | s / step | train wall |')
  print('|---|---:|---:|---:|')
  for name, arm in r['arms'].items():
    step = '-' if arm.step_time_s is None else f'{arm.step_time_s:.3f}'
    wall = '-' if arm.train_wall_s is None else f'{arm.train_wall_s:.0f} s'
    print(f'| {name} | {arm.exact_match:.1f}% of {arm.metrics["n"]:.0f} | {step} | {wall} |')
  print(f'\nsettings: {dataclasses.asdict(s)}; base: {r["base"]}')
  print(f'CPU: {info["cpu_model"]} ({info["cpus_usable"]} usable cores)')
  print(f'load average at start: {info["load_avg_start"]}; at end: {r["load_avg"]}')
  print(f'wall time: {r["wall_s"]:.0f} s; jobs under {root}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
