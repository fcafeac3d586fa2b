"""The main job: train the tiny PaLI through `paxml.main`, then evaluate and decode.

A new job starts as PaLI does, from a pretrained ViT: `pali-pax pretrain-vit`'s
`start_job` trains one on the scenes' labels (the stand-in for a public checkpoint),
writes it as a big_vision .npz in the job dir and converts it into the job's step-0
checkpoint (`convert.to_pax`, the users' path). Then `pali-pax demo` (or `make demo`) runs
`paxml.main`, which restores that step and trains with the ViT frozen, in a child process (paxml
can hang instead of exiting when a background thread dies, so the child gets a
timeout) with evaluation and decoding on the held-out synthetic tasks during
training, and shows a progress bar from its step log. Afterwards it prints
`evaluation.report`: the latest eval / decode metrics paxml wrote to the job's
TensorBoard summaries, decoded validation examples in several languages from
paxml's `decoder_out/`, and the latest checkpoint step. Running it again
resumes from that checkpoint.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

from tqdm import tqdm

from pali_pax import evaluation
from pali_pax.checkpoint import layout
from pali_pax.cli import common, pretrain_vit
from pali_pax.fiddle_configs import registry

EXPERIMENT = 'PaliTinySyntheticPretrainedVit'
_STEP_RE = re.compile(r'step = (\d+), loss= ([0-9.eE+-]+), steps/sec')  # train lines only


def training_command(
  job_dir: str, steps: int | None, no_cache: bool = False, seed: int | None = None
) -> tuple[list[str], int]:
  """(argv of paxml.main for the tiny experiment, its total steps); `seed` None: its SEED."""
  exp = registry.get_experiment(EXPERIMENT)
  total = steps or exp.NUM_TRAIN_STEPS
  # Short runs still evaluate, decode and checkpoint at their last step.
  every = {k: min(getattr(exp, k), total) for k in ('EVAL_EVERY', 'CHECKPOINT_EVERY')}
  cmd = [
    sys.executable,
    '-m',
    'pali_pax.cli',
    'train',
    f"--fdl_config=pali_pax.fiddle_configs.experiments.experiment_config('{EXPERIMENT}')",
    f'--fdl.NUM_TRAIN_STEPS={total}',
    *(f'--fdl.{k}={v}' for k, v in every.items()),
    *([f'--fdl.SEED={seed}'] if seed is not None else []),
    f'--job_dir={job_dir}',
    '--mode=train',
    '--eval_on_test',  # paxml skips eval / decode during training without these
    '--decode_during_train',
    *(['--no_compilation_cache'] if no_cache else []),
  ]
  return cmd, total


def run_training(
  job_dir: str,
  steps: int | None,
  timeout_s: int = 3600,
  no_cache: bool = False,
  seed: int | None = None,
) -> list[str]:
  """Runs paxml.main for the tiny experiment (`training_command`); returns its log lines."""
  cmd, total = training_command(job_dir, steps, no_cache, seed)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  start = layout.latest_step(job_dir) or 0
  os.makedirs(job_dir, exist_ok=True)
  log_path = os.path.join(job_dir, 'demo_train.log')
  lines: list[str] = []
  bar = tqdm(total=total, initial=start, desc='training', unit='step')
  t0 = time.time()
  with (
    open(log_path, 'a') as log,
    subprocess.Popen(
      cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc,
  ):
    assert proc.stdout is not None
    for line in proc.stdout:
      log.write(line)
      lines.append(line)
      if m := _STEP_RE.search(line):
        step = int(m.group(1))
        bar.set_postfix(loss=float(m.group(2)))
        bar.update(max(0, step - bar.n))
      if time.time() - t0 > timeout_s:
        proc.kill()
        raise TimeoutError(f'paxml.main ran past {timeout_s}s; see {log_path}')
    code = proc.wait()
  bar.close()
  if code != 0:
    tail = ''.join(lines[-40:])
    raise RuntimeError(f'paxml.main exited with {code}; log: {log_path}\n{tail}')
  return lines


def main(
  job_dir: str = 'runs/tiny_pali',
  steps: int | None = None,
  fresh: bool = False,
  no_cache: bool = False,
  seed: int | None = None,
) -> int:
  """Train (or resume), then print eval metrics and decoded samples."""
  if fresh and os.path.isdir(job_dir):
    shutil.rmtree(job_dir)
  if layout.latest_step(job_dir) is None:
    print(f'[demo] new job dir {job_dir}: pretraining its ViT')
    pretrain_vit.start_job(EXPERIMENT, job_dir, seed=seed)
  done = layout.latest_step(job_dir)
  print(
    f'[demo] job dir {job_dir} (latest checkpoint: {done}); training {EXPERIMENT} via paxml.main'
  )
  run_training(job_dir, steps, no_cache=no_cache, seed=seed)
  print(f'[demo] evaluating the latest checkpoint in {job_dir}')
  print(evaluation.report(job_dir))
  return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The flags of `pali-pax demo`."""
  common.add_job_dir(p, default='runs/tiny_pali', help='job dir (resumed if it has checkpoints)')
  p.add_argument(
    '--steps', type=common.positive_int, default=None, help='override the number of train steps'
  )
  p.add_argument('--fresh', action='store_true', help='delete job_dir first instead of resuming')
  p.add_argument(
    '--seed',
    type=int,
    default=None,
    help="data seed (the experiment's SEED): other batches, and another ViT pretraining",
  )
  common.add_no_cache(p)


def run(args: argparse.Namespace) -> int:
  """`pali-pax demo`."""
  return main(
    job_dir=args.job_dir,
    steps=args.steps,
    fresh=args.fresh,
    no_cache=args.no_compilation_cache,
    seed=args.seed,
  )
