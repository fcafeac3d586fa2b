"""INIT_FROM across resolutions through paxml's own SPMD initialisation (`fiddle_configs.task.PaliTask`).

A random 32 px PaliTinySynthetic checkpoint (step 0, written by paxml's
checkpointer) initialises the 48 px PaliTinySyntheticHighRes exactly as
`paxml.main` does it (`trainer_lib.initialize_partitioned_model_states` with
the experiment's init rules): the posemb is the bilinear resample of the saved
one (4x4 -> 6x6 grid) and every other variable is the saved one, bit for bit.
"""

import shutil

import jax
import numpy as np
import pytest
from paxml import trainer_lib
from paxml.checkpoint_types import CheckpointType
from praxis import base_layer

from pali_pax import job_config
from pali_pax.checkpoint import layout, reading
from pali_pax.convert import to_pax
from pali_pax.core import batch as batch_lib
from pali_pax.core.errors import CheckpointMismatchError
from pali_pax.fiddle_configs import experiments, task
from pali_pax.layers.vit import resample_posemb

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('absl_flags_parsed')]


@pytest.fixture(scope='module')
def low_res_job(tmp_path_factory):
  """A 32 px PaliTinySynthetic job dir with a random step-0 checkpoint."""
  job = tmp_path_factory.mktemp('low_res')
  to_pax.convert_to_pax('PaliTinySynthetic', str(job), seed=0)
  return str(job)


def _initialise(exp) -> dict:
  """The experiment's initial params as paxml.main computes them (seed 1, one device)."""
  task_p = exp.task()
  jax_task = base_layer.instantiate(task_p)
  specs = batch_lib.batch_specs(exp.IMAGE_SIZE)
  meta = trainer_lib.create_train_state_metadata(jax_task, specs)
  devices = np.array(jax.devices()[:1]).reshape(1, 1, 1)
  mesh = jax.sharding.Mesh(devices, task_p.model.mesh_axis_names)
  with mesh:
    state, _ = trainer_lib.initialize_partitioned_model_states(
      jax_task,
      jax.random.PRNGKey(1),
      specs,
      meta.partition_specs,
      global_mesh=mesh,
      checkpoint_type=CheckpointType.GDA,
      var_weight_hparams=meta.var_weight_hparams,
    )
  return jax.tree_util.tree_map(np.asarray, state.mdl_vars['params'])


def _flat(params: dict) -> dict[str, np.ndarray]:
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return {'/'.join(k.key for k in path): x for path, x in leaves}


def test_high_res_init_resamples_posemb_and_copies_everything_else(low_res_job):
  _, saved = job_config.load_model_params(low_res_job)
  exp = experiments.PaliTinySyntheticHighRes(INIT_FROM=f'{low_res_job}/checkpoints')
  params = _initialise(exp)
  saved_posemb = saved['vit']['pos_embedding']
  assert saved_posemb.shape == (1, 16, 32)  # 32 px / patch 8 = 4x4
  assert params['vit']['pos_embedding'].shape == (1, 36, 32)  # 48 px: 6x6
  np.testing.assert_array_equal(
    params['vit']['pos_embedding'], resample_posemb(saved_posemb, (6, 6))
  )
  flat_new, flat_saved = _flat(params), _flat(saved)
  assert set(flat_new) == set(flat_saved)
  for name, value in flat_saved.items():
    if name != 'vit/pos_embedding':
      np.testing.assert_array_equal(flat_new[name], value, err_msg=name)


def test_init_from_skips_a_corrupt_newest_step(low_res_job, tmp_path, caplog):
  """INIT_FROM picks its step as every reader does: the newest intact one."""
  ckpts = tmp_path / 'job' / 'checkpoints'
  shutil.copytree(f'{low_res_job}/checkpoints', ckpts)
  newest = ckpts / 'checkpoint_00000005'
  shutil.copytree(ckpts / 'checkpoint_00000000', newest)
  (chunk,) = [
    p
    for p in (newest / 'state' / 'mdl_vars.params.vit.pos_embedding').iterdir()
    if not p.name.startswith('.')
  ]
  data = bytearray(chunk.read_bytes())
  data[len(data) // 2] ^= 0x10
  chunk.write_bytes(bytes(data))
  assert layout.latest_step(ckpts) == 5
  assert reading.find_step(ckpts)[0] == 0
  params = _initialise(experiments.PaliTinySyntheticHighRes(INIT_FROM=str(ckpts)))
  assert f'skipping corrupt checkpoint {newest}' in caplog.text
  _, saved = job_config.load_model_params(low_res_job)
  np.testing.assert_array_equal(
    params['vit']['pos_embedding'], resample_posemb(saved['vit']['pos_embedding'], (6, 6))
  )
  np.testing.assert_array_equal(
    params['mt5']['token_emb']['emb_var'], saved['mt5']['token_emb']['emb_var']
  )


def test_another_shape_mismatch_is_an_error_naming_the_variable(low_res_job):
  exp = experiments.PaliTinySynthetic(INIT_FROM=f'{low_res_job}/checkpoints', VOCAB_SIZE=2000)
  wrong = r"variable 'params/mt5/[^']*' has shape \[[0-9, ]*2100[0-9, ]*\] in the checkpoint"
  with pytest.raises(CheckpointMismatchError, match=wrong + r' but \[[0-9, ]*2000'):
    _initialise(exp)


def test_saved_var_shapes_read_the_checkpoint_metadata(low_res_job):
  step, step_dir = reading.find_step(f'{low_res_job}/checkpoints')
  assert (step, step_dir.name) == (0, 'checkpoint_00000000')
  shapes = layout.saved_shapes(step_dir)
  assert shapes[task.POSEMB] == (1, 16, 32)
  posemb = layout.read_saved_array(step_dir, task.POSEMB)
  _, saved = job_config.load_model_params(low_res_job)
  np.testing.assert_array_equal(posemb, saved['vit']['pos_embedding'])
