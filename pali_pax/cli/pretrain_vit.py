"""`pali-pax pretrain-vit --exp NAME --job_dir DIR [--steps N] [--seed S]`: a job's pretrained ViT.

Pretrains the experiment's ViT on the synthetic scenes' labels (`pali_pax.vit_pretrain`:
the demo's stand-in for a public ViT checkpoint), writes it as DIR/vit_pretrained.npz
(big_vision layout) and converts it into DIR's step-0 checkpoint (`convert.to_pax`,
as `pali-pax convert --vit` does for a real one). `pali-pax train --exp NAME --job_dir
DIR` then starts from it; `pali-pax demo` runs both.
"""

import argparse
import os
from typing import Any

from pali_pax import vit_pretrain
from pali_pax.checkpoint import layout
from pali_pax.cli import common
from pali_pax.convert import export_vit, to_pax
from pali_pax.core import errors
from pali_pax.core import params as params_lib
from pali_pax.fiddle_configs import data, learner, registry

VIT_NPZ = 'vit_pretrained.npz'  # in the job dir
DEFAULT_STEPS = 4000


def start_job(
  exp_name: str, job_dir: str, steps: int | None = None, seed: int | None = None
) -> str:
  """Pretrains `exp_name`'s ViT and converts it into JOB_DIR's step 0; returns the .npz.

  Args:
    exp_name: a registered experiment on the synthetic data (its ViT and OCR_STYLE).
    job_dir: a job dir without checkpoints.
    steps: pretraining steps of 64 (None: the experiment's VIT_PRETRAIN_STEPS, else 4000).
    seed: the job's SEED (recorded as an override); None: the experiment's. The ViT's
      init comes from it, its images from seed + 1 (not the job's own data).

  Raises:
    ConfigError: the experiment does not train on the synthetic scenes.
    FileExistsError: JOB_DIR already holds checkpoints (checked before pretraining).
  """
  exp = registry.get_experiment(exp_name)()
  if not isinstance(exp, data.SyntheticData):
    raise errors.ConfigError(
      f'{exp_name} does not train on the synthetic scenes; pretrain-vit makes a ViT for '
      'those (for real data convert a public ViT: pali-pax convert --vit)'
    )
  if layout.latest_step(job_dir) is not None:
    raise FileExistsError(f'{job_dir} already holds checkpoints; choose a new job dir')
  steps = steps or exp.VIT_PRETRAIN_STEPS or DEFAULT_STEPS
  run_seed = exp.SEED if seed is None else seed
  vit_cfg = params_lib.unsharded(exp.model_config()).vit_tpl
  params, accuracy = vit_pretrain.pretrain(vit_cfg, steps, run_seed, run_seed + 1, exp.OCR_STYLE)
  print(f'[pretrain-vit] held-out: {", ".join(f"{k} {v:.3f}" for k, v in accuracy.items())}')
  npz = export_vit.export_vit_big_vision(params, vit_cfg, os.path.join(job_dir, VIT_NPZ))
  overrides = None if seed is None else {'SEED': seed}
  to_pax.convert_to_pax(exp_name, job_dir, vit=npz, seed=run_seed, overrides=overrides)
  return npz


def starts_pretrained(exp: Any) -> bool:
  """Whether jobs of `exp` (an experiment, or its class) start from `start_job`."""
  return bool(getattr(exp, 'VIT_PRETRAIN_STEPS', None))


def check_started(exp: Any, exp_name: str, job_dir: str) -> None:
  """Refuses to train an experiment that starts from a pretrained ViT (VIT_PRETRAIN_STEPS)
  into a job dir without checkpoints and without INIT_FROM: its frozen ViT would stay a
  random init. `exp` is the built experiment.

  Raises:
    ConfigError: naming the command that starts the job.
  """
  if not starts_pretrained(exp) or exp.INIT_FROM:
    return
  if learner.trains_vit(exp.trainable()) or layout.latest_step(job_dir) is not None:
    return
  raise errors.ConfigError(
    f'{exp_name} trains with its ViT frozen from a pretrained start, and {job_dir} has no '
    f'checkpoint: run `pali-pax pretrain-vit --exp={exp_name} --job_dir={job_dir}` first '
    "(or `pali-pax demo`), or set INIT_FROM, or --fdl.TRAINABLE='all'"
  )


def add_arguments(p: argparse.ArgumentParser) -> None:
  """The flags of `pali-pax pretrain-vit`."""
  common.add_exp(p, required=True, help='registered experiment on the synthetic data')
  common.add_job_dir(p, help='the new job dir to start (must hold no checkpoints)')
  p.add_argument(
    '--steps',
    type=common.positive_int,
    default=None,
    help=f"pretraining steps (default: the experiment's VIT_PRETRAIN_STEPS, else {DEFAULT_STEPS})",
  )
  p.add_argument(
    '--seed', type=int, default=None, help="the job's SEED (default: the experiment's)"
  )


def run(args: argparse.Namespace) -> int:
  """`pali-pax pretrain-vit`: prints the .npz written."""
  print(start_job(args.exp, common.job_dir(args), args.steps, args.seed))
  return 0
