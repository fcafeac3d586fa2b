"""LoRA against full fine-tuning on a transfer task (issue 22 item 5d).

    python -m benchmarks.transfer [--steps 2000] [--seed 0] [--pretrain_steps 1500]
                                  [--base JOB_DIR] [--root DIR]

The recipe (`run_recipe`, shared with tests/fiddle_configs/test_transfer_slow.py):

1. Pretrain the tiny model on the synthetic mixture: `pali-pax train` of the demo's
   experiment (PaliTinySynthetic, what `pali-pax demo --steps N` trains, without its
   in-training decode) for `pretrain_steps`, or take an existing job dir (`--base`,
   e.g. a `pali-pax demo` run).
2. Write the JSONL data set of `benchmarks.transfer_data` (coloured shapes, a new
   prompt, an answer naming colour, shape and quadrant) with a held-out val.jsonl.
3. Fine-tune PaliFinetuneJsonlTiny from the pretrained checkpoints (INIT_FROM) with
   TRAINABLE='lora' and with TRAINABLE='all', the same steps, batch and data seed,
   through `pali-pax train` (= paxml.main).
4. Score each job's last step, and the LoRA job's step 0 (= the pretrained model
   exactly: the adapters start at zero), on every val.jsonl example with `pali-pax
   eval --task pali_jsonl_vqa` (greedy decode, VQA accuracy and exact match).

Reported per preset: trainable / total parameters and optimizer-state bytes
(`fiddle_configs.trainable.summary` on the job's train state, the function behind the
run's start-up line; see `trainable_counts`), the median seconds per train step from
paxml's steps/sec lines (the first, which holds compilation, left out), exact match,
VQA accuracy, and how often the colour, shape and quadrant words are each right.
The LoRA setting (`LORA`) keeps the trainable share <= 5% at width 32: rank 3 on every
default target (ViT and mT5 attention q/k/v/out, cross-attention, feed-forward), 3,392
adapter parameters per unit of rank against 202,944 in the model (rank 4: 6.3%).
LoRA trains at 1e-2, full fine-tuning at the tiny preset's 3e-3 (Adam, 20 warm-up
steps, rsqrt decay); a cosine decay to 0 learned less for both (10.8% exact match).
"""

import argparse
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks import machine, transfer_data
from pali_pax import job_config
from pali_pax.checkpoint import reading
from pali_pax.cli import pretrain_vit
from pali_pax.fiddle_configs import registry, trainable

PRETRAIN_EXP = 'PaliTinySynthetic'
FINETUNE_EXP = 'PaliFinetuneJsonlTiny'
EVAL_TASK = f'pali_jsonl_{transfer_data.TASK}'
PRESETS = ('lora', 'all')
# 3 * 3,392 adapter parameters per rank unit on the default targets: 10,176 of 213,120.
LORA = {'LORA_RANK': 3, 'LORA_ALPHA': 6.0}
TIMEOUT_S = 1500  # per command; paxml can hang instead of exiting when a thread dies
_TRAINABLE = re.compile(r'trainable parameters ([\d,]+) of ([\d,]+)')
_STEPS_PER_SEC = re.compile(r'steps/sec: ([0-9.eE+-]+)')


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the recipe runs: steps, seeds, data sizes and optimizer settings.

  Attributes:
    steps: fine-tune steps of each preset.
    seed: data-set seed and the fine-tunes' SEED (batch order).
    pretrain_steps: PaliTinySynthetic steps when no base job dir is given.
    n_train / n_val: data-set sizes (multiples of 60 are balanced).
    learning_rate: {preset: peak learning rate} (Adam, 20 warm-up steps, rsqrt decay).
    batch_size: fine-tune batch.
  """

  steps: int = 2000
  seed: int = 0
  pretrain_steps: int = 1500
  n_train: int = 2400
  n_val: int = 120
  learning_rate: tuple[tuple[str, float], ...] = (('lora', 1e-2), ('all', 3e-3))
  batch_size: int = 8
  lr_schedule: str = 'rsqrt'
  warmup_steps: int = 20


@dataclasses.dataclass
class PresetResult:
  """One fine-tune: what trained, how fast, how well (metrics of `pali-pax eval`)."""

  preset: str
  trainable: int
  total: int
  opt_state_bytes: int
  step_time_s: float
  train_wall_s: float
  metrics: dict[str, float]

  @property
  def fraction(self) -> float:
    return self.trainable / self.total


@dataclasses.dataclass
class TransferResult:
  """The recipe's outcome: zero-shot metrics of the pretrained model and each preset's."""

  settings: Settings
  base_job: str
  data_dir: str
  zero_shot: dict[str, float]
  presets: dict[str, PresetResult]
  jobs: dict[str, str]
  wall_s: float
  load_avg: tuple[float, float, float]


def cli(*args: Any, log_path: str, timeout: float = TIMEOUT_S) -> str:
  """Runs `pali-pax ARGS` in a fresh interpreter; writes its log; returns it (raises on failure)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  cmd = [sys.executable, '-m', 'pali_pax.cli', *map(str, args)]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
  log = proc.stdout + proc.stderr
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  with open(log_path, 'w') as f:
    f.write(log)
  if proc.returncode != 0:
    raise RuntimeError(
      f'pali-pax {args[0]} exited with {proc.returncode} ({log_path}):\n{log[-3000:]}'
    )
  return log


def pretrain(job: str, steps: int, exp: str = PRETRAIN_EXP) -> str:
  """Trains `exp` for `steps` into `job`; returns `job`. An experiment that starts from
  a pretrained ViT (VIT_PRETRAIN_STEPS: the demo's) first gets one from `pali-pax
  pretrain-vit`, as `pali-pax demo` does."""
  if pretrain_vit.starts_pretrained(registry.get_experiment(exp)):
    cli('pretrain-vit', f'--exp={exp}', f'--job_dir={job}', log_path=os.path.join(job, 'vit.log'))
  cli(
    'train',
    f'--exp={exp}',
    f'--fdl.NUM_TRAIN_STEPS={steps}',
    f'--fdl.CHECKPOINT_EVERY={steps}',
    f'--fdl.EVAL_EVERY={steps}',
    f'--job_dir={job}',
    '--mode=train',
    log_path=os.path.join(job, 'pretrain.log'),
  )
  return job


def trainable_counts(job: str, log: str) -> dict[str, int]:
  """{'trainable', 'total', 'opt_state_bytes', ...} of a job's train state (`trainable.summary`).

  Counted on the abstract train state paxml builds for the job's experiment (the same
  learner masks and optimizer), with `fiddle_configs.trainable.summary`, the function
  behind the run's start-up line (`PaliTask`); where the log has that line, it must agree.
  """
  exp = job_config.experiment_of(job)
  task = reading.jax_task(exp)
  meta = reading.train_state_metadata(task, exp)
  state = meta.unpadded_global_shapes
  out = trainable.summary(
    state.mdl_vars, meta.var_weight_hparams, task.learners[0], state.opt_states
  )
  m = _TRAINABLE.search(log)
  if m is not None:
    logged = (int(m.group(1).replace(',', '')), int(m.group(2).replace(',', '')))
    if logged != (out['trainable'], out['total']):
      raise ValueError(f'{job}: the run logged {logged}, the train state holds {out}')
  return out


def step_time(log: str) -> float:
  """Median seconds per train step from paxml's steps/sec lines (the first one left out)."""
  rates = [float(x) for x in _STEPS_PER_SEC.findall(log)]
  rates = rates[1:] or rates
  if not rates:
    raise ValueError('no steps/sec line in the train log')
  return 1.0 / statistics.median(rates)


def train_job(exp: str, job: str, overrides: dict[str, Any]) -> tuple[str, float]:
  """`pali-pax train --exp=EXP --fdl.K=V ... --mode=train` into `job`: (log, wall seconds)."""
  flags = [f'--fdl.{k}={v}' for k, v in overrides.items()]
  t0 = time.time()
  log = cli(
    'train',
    f'--exp={exp}',
    *flags,
    f'--job_dir={job}',
    '--mode=train',
    log_path=os.path.join(job, 'train.log'),
  )
  return log, time.time() - t0


def finetune(job: str, data: str, base: str, preset: str, s: Settings) -> tuple[str, float]:
  """`pali-pax train` of FINETUNE_EXP under `preset` from `base`; returns (log, wall s)."""
  overrides = {
    'DATA_DIR': data,
    'INIT_FROM': os.path.join(base, 'checkpoints'),
    'TRAINABLE': preset,
    'NUM_TRAIN_STEPS': s.steps,
    'CHECKPOINT_EVERY': s.steps,
    'EVAL_EVERY': s.steps,  # no in-training eval here (--mode=train); paces the log lines
    'SEED': s.seed,
    'BATCH_SIZE': s.batch_size,
    'EVAL_BATCH_SIZE': 40,  # `pali-pax eval`'s decode batch
    'LEARNING_RATE': dict(s.learning_rate)[preset],
    'LR_SCHEDULE': s.lr_schedule,
    'WARMUP_STEPS': s.warmup_steps,
    **(LORA if preset == 'lora' else {}),
  }
  return train_job(FINETUNE_EXP, job, overrides)


def field_accuracy(rows: list[dict[str, Any]]) -> dict[str, float]:
  """Share (0-100) of predictions whose colour, shape and quadrant words are right, each."""
  out = {}
  for i, field in enumerate(('colour', 'shape', 'quadrant')):
    hits = [
      len(r['prediction'].split()) > i
      and r['prediction'].split()[i] == r['references'][0].split()[i]
      for r in rows
    ]
    out[field] = 100.0 * sum(hits) / len(hits)
  return out


def scored(
  job: str, task: str, step: int | None = None, out: str | None = None
) -> tuple[dict[str, float], list[dict[str, Any]]]:
  """`pali-pax eval JOB --task TASK` on the whole val split: (its metrics, its predictions)."""
  out = out or os.path.join(job, 'eval')
  step_flag = ['--step', step] if step is not None else []
  cli('eval', job, '--task', task, *step_flag, '--out', out, log_path=f'{out}/eval.log')
  (stem,) = [f[: -len('.metrics.json')] for f in os.listdir(out) if f.endswith('.metrics.json')]
  with open(os.path.join(out, f'{stem}.metrics.json')) as f:
    metrics = json.load(f)['metrics']
  with open(os.path.join(out, f'{stem}.predictions.json')) as f:
    return metrics, json.load(f)


def evaluate(job: str, step: int | None = None, out: str | None = None) -> dict[str, float]:
  """`scored` on EVAL_TASK: its metrics (exact_match, vqa_accuracy) and `field_accuracy`."""
  metrics, rows = scored(job, EVAL_TASK, step, out)
  return {**metrics, **field_accuracy(rows)}


def run_recipe(root: str, s: Settings, base: str | None = None, log: Any = print) -> TransferResult:
  """Pretrain (unless `base`), write the data, fine-tune each preset, evaluate; see module doc."""
  t0 = time.time()
  os.makedirs(root, exist_ok=True)
  data = transfer_data.write(os.path.join(root, 'data'), s.seed, s.n_train, s.n_val)
  if base is None:
    log(f'[transfer] pretraining {PRETRAIN_EXP} for {s.pretrain_steps} steps')
    base = pretrain(os.path.join(root, 'base'), s.pretrain_steps)
  presets, jobs = {}, {}
  for preset in PRESETS:
    job = jobs[preset] = os.path.join(root, preset)
    log(f'[transfer] fine-tuning {preset} for {s.steps} steps')
    train_log, wall = finetune(job, data, base, preset, s)
    counts = trainable_counts(job, train_log)
    log(f'[transfer] evaluating {preset}')
    presets[preset] = PresetResult(
      preset,
      counts['trainable'],
      counts['total'],
      counts['opt_state_bytes'],
      step_time(train_log),
      wall,
      evaluate(job),
    )
  log('[transfer] evaluating the pretrained model (the LoRA job at step 0)')
  zero_shot = evaluate(jobs['lora'], step=0, out=os.path.join(root, 'zero_shot'))
  return TransferResult(s, base, data, zero_shot, presets, jobs, time.time() - t0, os.getloadavg())


def table(r: TransferResult) -> str:
  """The printed report: one row per preset plus the pretrained model's zero-shot row."""
  head = (
    '| preset | trainable / total | fraction | optimizer state | step time (s) '
    '| exact match | VQA accuracy | colour / shape / quadrant right |'
  )
  rows = [head, '|---|---:|---:|---:|---:|---:|---:|---:|']

  def scores(m: dict[str, float]) -> str:
    fields = ' / '.join(f'{m[k]:.1f}' for k in ('colour', 'shape', 'quadrant'))
    return f'{m["exact_match"]:.1f} | {m["vqa_accuracy"]:.1f} | {fields} |'

  rows.append(f'| pretrained, zero-shot | - | - | - | - | {scores(r.zero_shot)}')
  for p in r.presets.values():
    rows.append(
      f'| {p.preset} | {p.trainable:,} / {p.total:,} | {100 * p.fraction:.2f}% | '
      f'{p.opt_state_bytes / 1024:,.0f} KiB | {p.step_time_s:.4f} | {scores(p.metrics)}'
    )
  lora, full = r.presets['lora'].metrics, r.presets['all'].metrics
  share = lora['exact_match'] / max(full['exact_match'], 1e-9)
  rows.append(f'\nLoRA / all exact match: {share:.2f}')
  return '\n'.join(rows)


def main(argv: list[str] | None = None) -> int:
  """Runs the recipe once and prints the table, the machine and the load."""
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--steps', type=int, default=Settings.steps, help='fine-tune steps')
  p.add_argument('--seed', type=int, default=Settings.seed, help='data and batch seed')
  p.add_argument('--pretrain_steps', type=int, default=Settings.pretrain_steps)
  p.add_argument('--base', default=None, help='a pretrained PaliTinySynthetic job dir')
  p.add_argument('--root', default=None, help='work dir (default runs/transfer_seed<S>)')
  args = p.parse_args(argv)
  s = Settings(steps=args.steps, seed=args.seed, pretrain_steps=args.pretrain_steps)
  root = args.root or os.path.join('runs', f'transfer_seed{args.seed}')
  info = machine.describe()
  r = run_recipe(root, s, base=args.base, log=lambda m: print(m, file=sys.stderr, flush=True))
  print(table(r))
  print(f'\nsettings: {dataclasses.asdict(s)}; base: {r.base_job}; LoRA: {LORA}')
  print(f'CPU: {info["cpu_model"]} ({info["cpus_usable"]} usable cores)')
  print(f'load average at start: {info["load_avg_start"]}; at end: {r.load_avg}')
  print(f'wall time: {r.wall_s:.0f} s; jobs under {root}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
