"""A LoRA job through the real `pali-pax train` (= paxml.main): adapter-only steps, exact resume.

The base is the tests' tiny Pax job (`tiny_pax_job`). One run trains STEPS steps
under TRAINABLE='lora' with INIT_FROM, saving every 2; its last step is then moved
aside and the same command rerun: paxml restores step STEPS - 2 through our
handler (adapters and their optimizer state from the step, the frozen base from
INIT_FROM's recorded step) and trains to STEPS again. The new last step must hold
the same arrays, bit for bit, as the one moved aside, and the rerun log the same
losses. Two paxml launches (~2 min each on an idle 2-core CPU): slow.
"""

import shutil

import numpy as np
import pytest
import tensorstore as ts

from pali_pax import job_config
from pali_pax.checkpoint import frozen, integrity, layout
from pali_pax.core import tree
from pali_pax.inference import Predictor
from tests import tiny_job
from tests.runs import STEP_LOSS, run_tiny

pytestmark = pytest.mark.slow

STEPS = 4
ADAPTER = ('lora_a', 'lora_b')


def _losses(log: str) -> set[tuple[int, str]]:
  """(step, loss as logged) of the steps a run trained (every digit counts)."""
  return {(int(m.group(1)), m.group(2)) for m in STEP_LOSS.finditer(log) if int(m.group(1)) > 2}


def _arrays(step_dir) -> dict[str, np.ndarray]:
  """Every array a step holds (params, optimizer state, step) by folder name, read as saved."""
  out = {}
  for entry in (step_dir / 'state').iterdir():
    if (entry / '.zarray').exists():
      spec = {'driver': 'zarr', 'kvstore': {'driver': 'file', 'path': str(entry)}}
      out[entry.name] = np.asarray(ts.open(spec).result().read().result())
  return out


def test_lora_job_saves_adapters_only_and_resumes_bit_exactly(tiny_pax_job, tmp_path):
  job = tmp_path / 'lora'
  overrides = {
    **tiny_job.OVERRIDES,
    'TRAINABLE': 'lora',
    'LORA_RANK': 4,
    'INIT_FROM': f'{tiny_pax_job}/checkpoints',
    'CHECKPOINT_EVERY': 2,
    'EVAL_EVERY': 1,  # a loss line every step
  }
  _, first = run_tiny(job, STEPS, **overrides)
  ckpts = layout.checkpoint_dir(job)
  assert layout.all_steps(job) == [0, 2, STEPS]  # paxml saves step 0 too
  base = frozen.of_job(job)
  assert base is not None and base.step == 0

  for _, step_dir in layout.step_dirs(ckpts):
    saved = layout.saved_shapes(step_dir)
    assert saved and all(n.endswith(ADAPTER) for n in saved), sorted(saved)
    assert integrity.verify_step(step_dir) == ([], True)

  moved = tmp_path / 'moved'
  shutil.move(layout.step_path(ckpts, STEPS), moved)
  _, log = run_tiny(job, STEPS, **overrides)
  assert 'frozen params of' in log and layout.all_steps(job) == [0, 2, STEPS]
  # Train and eval both log 'step = N, loss= L' (threads, either order): compare the sets.
  assert {s for s, _ in _losses(log)} >= {3, STEPS}
  assert _losses(log) <= _losses(first), sorted(_losses(log) - _losses(first))
  want, got = _arrays(moved), _arrays(layout.step_path(ckpts, STEPS))
  assert want.keys() == got.keys()
  different = [k for k in want if not np.array_equal(want[k], got[k])]
  assert not different, different

  # The job's model: INIT_FROM's weights bit for bit, plus the trained adapters.
  params = tree.flatten(Predictor.from_checkpoint(str(job)).params)
  base_params = tree.flatten(job_config.load_model_params(tiny_pax_job)[1])
  assert params.keys() - base_params.keys() == {k for k in params if k.endswith(ADAPTER)}
  assert all(np.array_equal(params[k], base_params[k]) for k in base_params)
  assert any(np.any(params[k]) for k in params if k.endswith('lora_b'))
