"""Checksums at pod scale, on `pali-pax launch-local` (2 JAX processes x 2 CPU devices).

A 2-process training run saves its steps; each process hashes the files it wrote
into its own manifest part (the parts are disjoint, cover every file, and process
1's holds its own data chunks). Then a byte is flipped in process 1's share of the
newest step and in process 0's share of the one before, and the job is rerun:
each process reads only the files of its own part (the debug log lists them), the
flip in either share makes that step corrupt on both processes, both steps are
moved aside, and paxml restores the step before them. Two paxml.main launches:
a few minutes on a 2-core machine (`make test-slow`).
"""

import json
import os
import re

import pytest

from pali_pax.checkpoint import integrity, layout, restoring
from tests.runs import cli_env, run_cli

pytestmark = pytest.mark.slow

TIMEOUT_S = 1200
FLAGS = [
  '--exp=PaliTinySynthetic',
  '--fdl.NUM_TRAIN_STEPS=4',
  '--fdl.CHECKPOINT_EVERY=1',
  '--fdl.EVAL_EVERY=1000',
  # The model axis spans both processes (devices 0-1 on process 0, 2-3 on process 1),
  # so each holds replica 0 of half of every model-sharded array and writes those
  # chunks. Where a process holds a whole data replica (ICI [1,2,4], or DCN [1,1,2]:
  # on CPU paxml lays the devices out in order, data outermost), replica 0 of every
  # shard sits on process 0 and process 1 writes nothing.
  '--fdl.ICI_MESH_SHAPE=[1,1,4]',
  '--mode=train',
  '--verbosity=1',  # the debug lines that list the files each process verified
]
VERIFIED = re.compile(
  r'^\[(\d)\] .*pali_pax integrity: process (\d) of 2 files of (\S+): (\[.*\])\s*$', re.M
)


def _launch(job):
  launch = ['launch-local', '--processes=2', '--devices_per_process=2', f'--timeout={TIMEOUT_S}']
  env = cli_env(JAX_PLATFORMS='cpu')
  return run_cli(*launch, '--', *FLAGS, f'--job_log_dir={job}', env=env, timeout=TIMEOUT_S + 60).log


def _parts(step_dir):
  state = step_dir / 'state'
  parts, count, problems = integrity.read_parts(state)
  assert problems == [] and count == 2 and sorted(parts) == [0, 1], (problems, count, parts)
  return {i: set(files) for i, files in parts.items()}, set(integrity.list_files(state))


def _flip(path):
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x10
  path.write_bytes(bytes(data))


def test_each_process_hashes_and_verifies_its_own_share(tmp_path):
  job = tmp_path / 'job'
  _launch(job)
  steps = layout.step_dirs(job / 'checkpoints')
  assert len(steps) >= 3, steps
  for _, step_dir in steps:
    parts, files = _parts(step_dir)
    assert parts[1], f'process 1 hashed no files of {step_dir}'
    assert not parts[0] & parts[1] and parts[0] | parts[1] == files
    # Process 1 wrote data chunks (its model shards) and hashed them itself.
    assert any(not f.split('/')[-1].startswith('.') for f in parts[1]), parts[1]
  (a, _), (b, b_dir), (c, c_dir) = steps[-3:]
  saved = {b: _parts(b_dir)[0], c: _parts(c_dir)[0]}
  chunk = lambda part: sorted(f for f in part if not f.split('/')[-1].startswith('.'))[0]  # noqa: E731
  flipped = {c: c_dir / 'state' / chunk(saved[c][1]), b: b_dir / 'state' / chunk(saved[b][0])}
  for path in flipped.values():
    _flip(path)

  log = _launch(job)
  read = {}
  for prefix, process, step_dir, files in VERIFIED.findall(log):
    assert prefix == process
    read[(layout.step_of(step_dir), int(process))] = set(json.loads(files))
  for step in (c, b):
    # Each process read exactly its own part of the step, nothing of the other's.
    assert read[(step, 0)] == saved[step][0] and read[(step, 1)] == saved[step][1], step
  # Both corrupt steps were found (process 1 for c, process 0 for b), moved aside on all.
  assert re.search(rf'^\[1\] .*{re.escape(str(flipped[c]))}: checksum mismatch', log, re.M)
  assert re.search(rf'^\[0\] .*{re.escape(str(flipped[b]))}: checksum mismatch', log, re.M)
  quarantined = sorted(os.listdir(job / restoring.QUARANTINE))
  assert quarantined == [b_dir.name, c_dir.name], quarantined
  assert re.search(rf'^\[0\] .*[Rr]estor\w* .*checkpoint_0*{a}\b', log, re.M), 'no restore of a'
  assert layout.latest_step(job) == 4
