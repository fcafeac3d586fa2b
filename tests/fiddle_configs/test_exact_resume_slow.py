"""Exact resume through the real `pali-pax train` (= paxml.main): kill -9, rerun, compare.

One run trains PaliTinySynthetic for STEPS steps uninterrupted. A second job is
killed with SIGKILL mid-run (after a checkpoint, possibly while the next one is
being written) and rerun with the same command. The rerun must end with the
same parameters, bit for bit, and log the same loss at every step it trains:
the train batch of step s depends only on (SEED, s) (`pali_pax.tasks.step_input`)
and paxml folds the step into the train PRNG key. Every checkpoint either run
wrote carries checksums that verify.

About 3 paxml launches (~2 min each on an idle 2-core CPU, more when loaded):
marked slow (`make test-slow`).
"""

import re
import signal
import subprocess

import numpy as np
import pytest

from pali_pax import job_config
from pali_pax.checkpoint import integrity, layout
from pali_pax.core import tree
from tests.runs import run_tiny, tiny_command

pytestmark = pytest.mark.slow

STEPS = 12
OVERRIDES = {'CHECKPOINT_EVERY': 4, 'EVAL_EVERY': 1}  # EVAL_EVERY=1: a loss line every step
KILL_AT = 9  # after checkpoint 8 started saving
LOSS_LINE = re.compile(r'step = (\d+), loss= ([0-9.eE+-]+)')
TIMEOUT_S = 1200


def _loss_lines(log):
  return {(int(m.group(1)), m.group(2)) for m in LOSS_LINE.finditer(log)}


def _run_killed(cmd, env, log_path):
  """Starts the run and SIGKILLs it once it logs step KILL_AT."""
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
  lines = []
  try:
    for line in proc.stdout:
      lines.append(line)
      if f'step = {KILL_AT},' in line:
        proc.send_signal(signal.SIGKILL)
        break
  finally:
    if proc.poll() is None:
      proc.kill()
    proc.wait(timeout=60)
  log_path.write_text(''.join(lines))
  assert proc.returncode == -signal.SIGKILL, ''.join(lines)[-3000:]


def test_kill_9_and_rerun_is_bit_identical_to_an_uninterrupted_run(tmp_path):
  straight = tmp_path / 'straight'
  _, straight_log = run_tiny(straight, STEPS, **OVERRIDES)

  resumed = tmp_path / 'resumed'
  cmd, env = tiny_command(resumed, STEPS, **OVERRIDES)
  _run_killed(cmd, env, tmp_path / 'killed.log')
  restart_step = layout.latest_step(str(resumed))
  assert restart_step is not None and 0 < restart_step < STEPS
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
  rerun_log = proc.stdout + proc.stderr
  (tmp_path / 'rerun.log').write_text(rerun_log)
  assert proc.returncode == 0, rerun_log[-4000:]
  assert re.search(rf'[Rr]estor\w* .*checkpoint_0*{restart_step}\b', rerun_log)

  # Same losses (as logged, every digit) at every step the rerun trained.
  straight_lines, rerun_lines = _loss_lines(straight_log), _loss_lines(rerun_log)
  assert {s for s, _ in rerun_lines} >= set(range(restart_step + 1, STEPS + 1))
  assert rerun_lines <= straight_lines, sorted(rerun_lines - straight_lines)

  # Same parameters, bit for bit.
  _, want = job_config.load_model_params(str(straight), 'PaliTinySynthetic')
  _, got = job_config.load_model_params(str(resumed), 'PaliTinySynthetic')
  assert layout.latest_step(str(straight)) == layout.latest_step(str(resumed)) == STEPS
  flat_want = tree.flatten(want)
  flat_got = tree.flatten(got)
  assert flat_want.keys() == flat_got.keys()
  different = [k for k in flat_want if not np.array_equal(flat_want[k], flat_got[k])]
  assert not different, different

  # Every checkpoint the train loop wrote has checksums, and they verify.
  for job in (straight, resumed):
    for _, path in layout.step_dirs(job / 'checkpoints'):
      assert integrity.verify_step(path) == ([], True), path
