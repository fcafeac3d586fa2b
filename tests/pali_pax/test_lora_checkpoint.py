"""A LoRA job's checkpoints hold only what trains; the frozen base is read from INIT_FROM.

The LoRA job is written as paxml writes a job: `job_config.write` (what `pali-pax
train` does at start: it records INIT_FROM's step), then a GDA step through paxml's
checkpointer with our handler installed. Its state is the LoRA model of the
tests' tiny Pax job (`tiny_pax_job`, the base): base weights, adapters with
B != 0 and a non-zero Adam state, as after training. paxml's own restore (the
train loop's resume), `Predictor.from_checkpoint` and `pali-pax merge` read it
back. The real train loop (kill-free resume): test_lora_checkpoint_slow.py.
"""

import json
import math
import os
import shutil

import jax
import numpy as np
import pytest
from paxml import checkpoints
from paxml.checkpoint_types import CheckpointType

from pali_pax import cli, job_config
from pali_pax.checkpoint import frozen, integrity, layout, reading, saving
from pali_pax.core import errors, tree
from pali_pax.inference import Predictor
from pali_pax.tasks import vocab
from tests import tiny_job
from tests.numerics import LORA_FOLD_BOUND

STEP = 7
ADAPTER = ('lora_a', 'lora_b')


def lora_overrides(base_job: str) -> dict:
  return {
    **tiny_job.OVERRIDES,
    'TRAINABLE': 'lora',
    'LORA_RANK': 4,
    'LORA_ALPHA': 8.0,
    'INIT_FROM': f'{base_job}/checkpoints',
  }


def _dir_bytes(path) -> int:
  return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def _saved_values(step_dir) -> int:
  """Values of every array a step holds (params, optimizer state, step), from .zarray headers."""
  headers = (step_dir / 'state').glob('*/.zarray')
  return sum(math.prod(json.loads(h.read_text())['shape']) for h in headers)


@pytest.fixture(scope='module')
def lora(tmp_path_factory, tiny_pax_job):
  """(job dir, the saved TrainState, the train state metadata) of a LoRA job at step STEP."""
  job = str(tmp_path_factory.mktemp('lora_ckpt_job'))
  overrides = lora_overrides(tiny_pax_job)
  job_config.write(job, tiny_job.EXP, overrides)
  exp = job_config.build(tiny_job.EXP, overrides)
  _, meta, state = reading.fresh_train_state(exp)
  base = tree.flatten(job_config.load_model_params(tiny_pax_job)[1])
  rng = np.random.default_rng(0)

  def as_trained(path, x):
    name = '/'.join(str(k.key) for k in path)
    if name.endswith('lora_b'):
      return rng.normal(0, 0.3, x.shape).astype(x.dtype)  # B != 0: the adapters matter
    return x if name.endswith(ADAPTER) else base[name]

  params = jax.tree_util.tree_map_with_path(as_trained, state.mdl_vars['params'])
  opt_states = jax.tree_util.tree_map(
    lambda x: x + rng.uniform(0.1, 1, x.shape).astype(x.dtype) if x.ndim else x, state.opt_states
  )
  state = state.replace(
    step=state.step + STEP,
    mdl_vars={**state.mdl_vars, 'params': jax.tree_util.tree_map(jax.numpy.asarray, params)},
    opt_states=opt_states,
  )
  saving.install()
  checkpoints.save_checkpoint(
    state,
    layout.checkpoint_dir(job),
    checkpoint_type=CheckpointType.GDA,
    train_state_unpadded_shape_dtype_struct=meta.unpadded_global_shapes,
  )
  return job, state, meta


def _saved_names(step_dir) -> list[str]:
  return sorted(e.name for e in (step_dir / 'state').iterdir() if e.is_dir())


def test_step_holds_only_the_adapters_their_optimizer_state_and_the_step(lora, tiny_pax_job):
  job, state, _ = lora
  step_dir = layout.step_path(layout.checkpoint_dir(job), STEP)
  names = _saved_names(step_dir)
  variables = [n for n in names if n.startswith('mdl_vars.')]
  adapters = {
    f'mdl_vars.params.{k.replace("/", ".")}'
    for k in tree.flatten(state.mdl_vars['params'])
    if k.endswith(ADAPTER)
  }
  assert adapters and set(variables) == adapters, sorted(set(variables) ^ adapters)
  # Adam's m and v of each adapter (arrays) and praxis' scalar counters; nothing of a frozen one.
  arrays = [n for n in names if n.startswith('opt_states') and n.endswith(ADAPTER)]
  assert len(arrays) == 2 * len(adapters)
  assert [n for n in names if n not in variables and n not in arrays and 'count' not in n] == [
    'step'
  ], names
  # The tiny model's adapters are ~7% of its params: the step holds ~1/15 of the base's values
  # (both with Adam's state); on disk the tiny arrays' fixed per-file costs weigh more.
  base_dir = layout.step_path(layout.checkpoint_dir(tiny_pax_job), 0)
  assert _saved_values(step_dir) * 10 < _saved_values(base_dir)
  assert _dir_bytes(step_dir) * 2 < _dir_bytes(base_dir)
  # The checksums cover exactly what was written.
  assert integrity.verify_step(step_dir) == ([], True)
  record = json.loads((layout.job_dir_of(job) / 'pali_pax.json').read_text())[frozen.KEY]
  assert record['step'] == 0 and record['step_dir'] == os.fspath(base_dir)
  assert record['bprop_variable_inclusion'] and not record['bprop_variable_exclusion']


def test_paxml_restore_is_the_saved_train_state_bit_for_bit(lora):
  """The train loop's resume: paxml's restore through the handler, with specs and a mesh."""
  job, state, meta = lora
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1, 1), ('replica', 'data', 'mdl'))
  restored = checkpoints.restore_checkpoint(
    meta.padded_global_shapes,
    layout.checkpoint_dir(job),
    global_mesh=mesh,
    checkpoint_type=CheckpointType.GDA,
    state_specs=meta.partition_specs,
    step=STEP,
    state_unpadded_shape_dtype_struct=meta.unpadded_global_shapes,
  )
  want, got = jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(restored)
  assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)
  assert len(want) == len(got)
  for a, b in zip(want, got, strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _inputs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  ids = rng.integers(2, vocab.SYNTHETIC_VOCAB_SIZE, (2, 10))
  dec = np.concatenate([np.zeros((2, 1), int), rng.integers(2, 100, (2, 5))], axis=1)
  return ids, dec, rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.uint8)


@pytest.fixture(scope='module')
def lora_predictor(lora) -> Predictor:
  return Predictor.from_checkpoint(lora[0])


def test_predictor_from_checkpoint_is_the_lora_model(lora, lora_predictor):
  _, state, _ = lora
  trained = jax.tree_util.tree_map(np.asarray, state.mdl_vars['params'])
  want, got = tree.flatten(trained), tree.flatten(lora_predictor.params)
  assert want.keys() == got.keys()
  assert all(np.array_equal(want[k], got[k]) for k in want)
  ids, dec, images = _inputs(1)
  logits = lora_predictor.text_logits(ids, dec, images=images)
  # The same model function on the in-memory state (params are an argument: no new compile).
  loaded, lora_predictor.params = lora_predictor.params, trained
  try:
    np.testing.assert_array_equal(logits, lora_predictor.text_logits(ids, dec, images=images))
    # With B = 0 (the base model, `test_trainable_lora_slow`) the logits move: the adapters are in.
    lora_predictor.params = jax.tree_util.tree_map_with_path(
      lambda p, x: np.zeros_like(x) if str(p[-1].key) == 'lora_b' else x, trained
    )
    assert np.max(np.abs(logits - lora_predictor.text_logits(ids, dec, images=images))) > 1e-3
  finally:
    lora_predictor.params = loaded


def test_merge_writes_a_full_plain_checkpoint_with_the_lora_models_logits(
  lora, lora_predictor, tmp_path
):
  job, _, _ = lora
  out = str(tmp_path / 'merged')
  assert cli.main(['merge', job, '--out', out]) == 0
  step_dir = layout.step_path(layout.checkpoint_dir(out), STEP)
  saved = layout.saved_shapes(step_dir)
  assert 'params/vit/pos_embedding' in saved
  assert not any(n.endswith(ADAPTER) for n in saved)
  assert frozen.of_job(out) is None
  ids, dec, images = _inputs(2)
  want = lora_predictor.text_logits(ids, dec, images=images)
  got = Predictor.from_checkpoint(out).text_logits(ids, dec, images=images)
  assert np.max(np.abs(got - want)) <= LORA_FOLD_BOUND * np.max(np.abs(want))


def test_a_corrupt_base_is_named_not_read(lora, tiny_pax_job, tmp_path):
  job, _, _ = lora
  base = tmp_path / 'base' / 'checkpoints' / 'checkpoint_00000000'
  shutil.copytree(layout.step_path(layout.checkpoint_dir(tiny_pax_job), 0), base)
  copy = tmp_path / 'job'
  shutil.copytree(job, copy)
  meta = json.loads((copy / 'pali_pax.json').read_text())
  meta[frozen.KEY]['step_dir'] = str(base)
  (copy / 'pali_pax.json').write_text(json.dumps(meta))
  posemb = base / 'state' / 'mdl_vars.params.vit.pos_embedding'
  chunk = next(p for p in posemb.iterdir() if not p.name.startswith('.'))
  data = bytearray(chunk.read_bytes())
  data[-1] ^= 0xFF
  chunk.write_bytes(bytes(data))
  with pytest.raises(errors.CorruptCheckpointError, match=str(base)):
    Predictor.from_checkpoint(str(copy))


def test_resuming_with_other_trainable_rules_is_an_error(lora):
  job, _, _ = lora
  overrides = {**json.loads((layout.job_dir_of(job) / 'pali_pax.json').read_text())['overrides']}
  with pytest.raises(errors.ConfigError, match='hold only the trainable params'):
    job_config.write(job, tiny_job.EXP, {**overrides, 'TRAINABLE': 'all'})
  with pytest.raises(errors.ConfigError, match='TRAINABLE must stay'):
    job_config.write(job, tiny_job.EXP, {**overrides, 'TRAINABLE': ('.*lora_b',)})
