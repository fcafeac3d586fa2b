"""Corrupt and incomplete checkpoints are found, reported and skipped.

The checkpoints are real paxml/orbax ones (`paxml.checkpoints.save_checkpoint`,
GDA / tensorstore zarr, the layout `paxml.main` writes) of a small TrainState;
each test damages the newest step the way a disk, a copy or a kill would.
"""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from paxml import checkpoints, train_states
from paxml.checkpoint_types import CheckpointType

from pali_pax.checkpoint import integrity, layout, reading, restoring, saving
from pali_pax.core.errors import CorruptCheckpointError

STEPS = (10, 20)


def _state(step):
  params = {
    'w': jnp.arange(64 * 32, dtype=jnp.float32).reshape(64, 32) / 100.0 + step,
    'b': jnp.full([32], float(step)),
  }
  return train_states.TrainState(
    step=jnp.array(step), mdl_vars={'params': params}, opt_states=[{'m': jnp.ones([32])}]
  )


def _shapes():
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _state(0))


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
  """A job dir with intact steps 10 and 20 (checksummed); copied per test."""
  job = tmp_path_factory.mktemp('ckpt') / 'job'
  saving.install()
  for step in STEPS:
    checkpoints.save_checkpoint(
      _state(step),
      job / 'checkpoints',
      checkpoint_type=CheckpointType.GDA,
      train_state_unpadded_shape_dtype_struct=_shapes(),
    )
  return job


@pytest.fixture
def job(saved, tmp_path):
  out = tmp_path / 'job'
  shutil.copytree(saved, out)
  return out


def _newest(job):
  return job / 'checkpoints' / f'checkpoint_{STEPS[-1]:08d}'


def _chunk(job, array='mdl_vars.params.w'):
  (path,) = [p for p in (_newest(job) / 'state' / array).iterdir() if not p.name.startswith('.')]
  return path


def _restore(job, step):
  return checkpoints.restore_checkpoint(
    _shapes(),
    job / 'checkpoints',
    checkpoint_type=CheckpointType.GDA,
    step=step,
    state_unpadded_shape_dtype_struct=_shapes(),
  )


def test_intact_steps_verify_and_restore(job):
  for _, path in layout.step_dirs(job / 'checkpoints'):
    assert integrity.verify_step(path) == ([], True)
  assert restoring.ensure_restorable(job) == 20
  restored = _restore(job, 20)
  np.testing.assert_array_equal(
    restored.mdl_vars['params']['w'], _state(20).mdl_vars['params']['w']
  )


def _flip_byte(job):
  path = _chunk(job)
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x10
  path.write_bytes(bytes(data))
  return path, 'checksum mismatch'


def _delete_chunk(job):
  path = _chunk(job)
  path.unlink()
  return path, 'missing'


def _truncate_chunk(job):
  path = _chunk(job)
  path.write_bytes(path.read_bytes()[:-7])
  return path, 'bytes'


def _delete_metadata(job):
  path = _newest(job) / 'metadata' / 'metadata'
  path.unlink()
  return path, 'paxml metadata'


def _empty_dir(job):
  path = _newest(job)
  shutil.rmtree(path)
  path.mkdir()
  return path, 'missing'


@pytest.mark.parametrize(
  'damage', [_flip_byte, _delete_chunk, _truncate_chunk, _delete_metadata, _empty_dir]
)
def test_a_damaged_newest_step_is_reported_moved_aside_and_the_previous_one_used(
  job, damage, caplog
):
  path, why = damage(job)
  problems, _ = integrity.verify_step(_newest(job))
  assert any(str(path) in p and why in p for p in problems), problems
  assert reading.intact_latest_step(str(job)) == 10  # readers skip it, leave it in place
  assert _newest(job).exists()
  assert restoring.ensure_restorable(job) == 10
  assert not _newest(job).exists()
  assert (job / restoring.QUARANTINE / _newest(job).name).is_dir()
  assert str(_newest(job)) in caplog.text
  # What paxml now restores is step 10, exactly as saved.
  restored = _restore(job, None)
  assert int(restored.step) == 10
  np.testing.assert_array_equal(
    restored.mdl_vars['params']['b'], _state(10).mdl_vars['params']['b']
  )


def test_a_flipped_byte_is_garbage_that_orbax_restores_silently(job):
  """Why checksums are needed: orbax/tensorstore themselves do not notice."""
  _flip_byte(job)
  try:
    w = np.asarray(_restore(job, 20).mdl_vars['params']['w'])
  except Exception:  # noqa: BLE001  (a flip may also break the zstd frame: then it is loud)
    return
  assert not np.array_equal(w, _state(20).mdl_vars['params']['w'])


def test_every_step_corrupt_is_an_error_naming_them(job):
  for _, path in layout.step_dirs(job / 'checkpoints'):
    (path / 'metadata' / 'metadata').unlink()
  with pytest.raises(CorruptCheckpointError, match='checkpoint_00000010'):
    restoring.ensure_restorable(job)


def test_orbax_tmp_dirs_are_not_steps(job):
  tmp = job / 'checkpoints' / 'checkpoint_00000030.orbax-checkpoint-tmp-1733084400123'
  (tmp / 'state').mkdir(parents=True)
  assert [s for s, _ in layout.step_dirs(job / 'checkpoints')] == [10, 20]
  assert layout.latest_step(str(job)) == 20
  assert restoring.ensure_restorable(job) == 20
  assert tmp.exists()  # orbax's own cleanup removes it, not us


def test_no_checkpoints_is_a_fresh_start(tmp_path):
  assert restoring.ensure_restorable(tmp_path) is None
  assert layout.latest_step(str(tmp_path)) is None


def _part(step_dir, i):
  return step_dir / 'state' / integrity.PART.format(i)


def test_one_process_writes_one_complete_manifest_part_naming_its_chunks(job):
  state = _newest(job) / 'state'
  assert sorted(p.name for p in state.iterdir() if integrity.is_manifest(p.name)) == [
    integrity.PART.format(0)
  ]
  body = json.loads(_part(_newest(job), 0).read_text())
  assert (body['process'], body['process_count']) == (0, 1)
  assert set(body['files']) == set(integrity.list_files(state))
  # The chunk names the handler predicts from the sharding are the files orbax wrote.
  w = jax.device_put(_state(20).mdl_vars['params']['w'])
  assert saving._written_here(w, 'mdl_vars.params.w') == ['mdl_vars.params.w/0.0']
  assert _chunk(job).name == '0.0'


def _split_in_two(step_dir):
  """Rewrites part 0 as two parts (as two processes would have written them)."""
  files = json.loads(_part(step_dir, 0).read_text())['files']
  names = sorted(files)
  ones = {n for n in names if n.startswith('mdl_vars.params.w/')}
  integrity.write_part(step_dir / 'state', 0, 2, {n: files[n] for n in names if n not in ones})
  integrity.write_part(step_dir / 'state', 1, 2, {n: files[n] for n in ones})
  return ones


def test_verification_is_split_by_manifest_part(job):
  ones = _split_in_two(_newest(job))
  zero, one = (integrity.verify_share(_newest(job), i, 2) for i in (0, 1))
  assert zero.problems == one.problems == []
  assert set(one.files_read) == ones and not set(zero.files_read) & ones
  assert set(zero.files_read) | ones == set(integrity.list_files(_newest(job) / 'state'))
  path, _ = _flip_byte(job)  # a chunk of w: process 1's share
  zero, one = (integrity.verify_share(_newest(job), i, 2) for i in (0, 1))
  assert zero.problems == [] and any(str(path) in p for p in one.problems)
  # With one process now, it checks both parts.
  assert any(str(path) in p for p in integrity.verify_step(_newest(job))[0])


def test_a_missing_part_or_an_unlisted_file_is_found(job):
  _split_in_two(_newest(job))
  _part(_newest(job), 1).unlink()
  problems, _ = integrity.verify_step(_newest(job))
  assert any('the part of process 1' in p for p in problems), problems
  assert any('not in the checksums' in p for p in problems), problems


def test_a_step_with_the_single_manifest_of_earlier_versions_still_verifies(job):
  body = json.loads(_part(_newest(job), 0).read_text())
  _part(_newest(job), 0).unlink()
  legacy = {'format': integrity.LEGACY_FORMAT, 'files': body['files']}
  (_newest(job) / 'state' / integrity.LEGACY).write_text(json.dumps(legacy))
  assert integrity.verify_step(_newest(job)) == ([], True)
  _flip_byte(job)
  assert 'checksum mismatch' in ' '.join(integrity.verify_step(_newest(job))[0])
