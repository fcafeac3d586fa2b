"""`pali-pax merge`: a LoRA job dir -> a plain job dir whose model computes the same logits.

The LoRA job is written as paxml writes a job (a real GDA checkpoint through
paxml's checkpointer, pali_pax.json) with random, non-zero adapters (B != 0, as
after training). `pali-pax merge` folds them; `Predictor.from_checkpoint` loads
both job dirs (the LoRA one as base + adapters, the merged one as a plain model).

The float32 bound: folding changes only the rounding of each adapted
projection, x(W + sAB) against xW + s(xA)B. Each is a sum of K products (K the
contraction length, at most 64 in the tiny model, plus r = 4), so each differs
from the exact value by at most about 2 K eps |x| |W'| (Higham's gamma_K, with
eps = 2^-24); the two evaluations by twice that. The perturbations of the ~30
sequential projections of the deepest path (ViT 2 blocks, mT5 encoder 2 and
decoder 2, 4-5 projections each) add to first order, normalisations keep the
activations O(1), so |logits_merged - logits_lora| <= 30 * 4 * 68 * eps * max|logits|.
"""

import jax
import numpy as np
import pytest
from paxml import checkpoints
from paxml.checkpoint_types import CheckpointType

from pali_pax import cli, job_config, lora_merge
from pali_pax.checkpoint import job_meta, layout, reading, saving
from pali_pax.core import errors
from pali_pax.inference import Predictor
from pali_pax.tasks import vocab
from tests.numerics import LORA_FOLD_BOUND

# Writes and merges a LoRA job (~35 s); the default suite merges one in test_lora_checkpoint.py.
pytestmark = pytest.mark.slow

OVERRIDES = {'TRAINABLE': 'lora', 'LORA_RANK': 4, 'LORA_ALPHA': 8.0}


@pytest.fixture(scope='module')
def lora_job(tmp_path_factory) -> str:
  job = str(tmp_path_factory.mktemp('lora_job'))
  exp = job_config.build('PaliTinySynthetic', OVERRIDES)
  _, meta, state = reading.fresh_train_state(exp)
  rng = np.random.default_rng(0)

  def trained(path, x):
    # B != 0 (as after training), so the adapters change the model.
    if str(path[-1].key) == 'lora_b':
      return rng.normal(0, 0.3, x.shape).astype(x.dtype)
    return x

  params = jax.tree_util.tree_map_with_path(trained, state.mdl_vars['params'])
  state = state.replace(step=state.step + 7, mdl_vars={**state.mdl_vars, 'params': params})
  saving.install()
  checkpoints.save_checkpoint(
    state,
    layout.checkpoint_dir(job),
    checkpoint_type=CheckpointType.GDA,
    train_state_unpadded_shape_dtype_struct=meta.unpadded_global_shapes,
  )
  job_config.write(job, 'PaliTinySynthetic', OVERRIDES)
  return job


def test_merged_job_dir_computes_the_lora_models_logits(lora_job, tmp_path):
  out = str(tmp_path / 'merged')
  assert cli.main(['merge', lora_job, '--out', out]) == 0
  name, overrides = job_meta.read(out)
  assert name == 'PaliTinySynthetic' and overrides['TRAINABLE'] == 'all'
  assert [s for s, _ in layout.step_dirs(layout.checkpoint_dir(out))] == [7]

  lora_p, plain_p = Predictor.from_checkpoint(lora_job), Predictor.from_checkpoint(out)
  flat = {
    '/'.join(str(k.key) for k in p) for p, _ in jax.tree_util.tree_leaves_with_path(plain_p.params)
  }
  assert not any(k.endswith(('lora_a', 'lora_b')) for k in flat)
  rng = np.random.default_rng(1)
  ids = rng.integers(2, vocab.SYNTHETIC_VOCAB_SIZE, (2, 10))
  dec = np.concatenate([np.zeros((2, 1), int), rng.integers(2, 100, (2, 5))], axis=1)
  images = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.uint8)
  want = lora_p.text_logits(ids, dec, images=images)
  got = plain_p.text_logits(ids, dec, images=images)
  assert np.max(np.abs(got - want)) <= LORA_FOLD_BOUND * np.max(np.abs(want)), np.max(
    np.abs(got - want)
  )
  # The adapters matter (B != 0): the merged weights are not the LoRA job's base weights.
  q_lora = lora_p.params['mt5']['decoder']['x_layers_0']['cross_attention']['query']
  q_plain = plain_p.params['mt5']['decoder']['x_layers_0']['cross_attention']['query']
  assert np.max(np.abs(q_plain['w'] - q_lora['w'])) > 0.01


def test_merging_a_plain_job_is_an_error_naming_it(lora_job):
  exp = job_config.build('PaliTinySynthetic', {'TRAINABLE': 'all'})
  with pytest.raises(errors.ConfigError, match='no LoRA adapters'):
    lora_merge.merged_params(exp, {})
