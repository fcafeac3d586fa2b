"""PaliFinetuneXm3600: trains on COCO captions, scores XM3600's test split per language."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from paxml import trainer_lib
from PIL import Image
from praxis import base_hyperparams, base_layer

from pali_pax.core import errors
from pali_pax.core import params as params_lib
from pali_pax.fiddle_configs import experiments, registry
from pali_pax.tasks import step_input
from tests.inputs import drain

# Two images; 'de' and 'en' caption both, 'zh' only the second.
XM3600_ROWS = [
  {'image/key': 'k1', 'de': {'caption': ['ein Kreis']}, 'en': {'caption': ['a circle']}},
  {
    'image/key': 'k2',
    'de': {'caption': ['ein Quadrat']},
    'en': {'caption': ['a square', 'one square']},
    'zh': {'caption': ['一个正方形']},
  },
]


def _write_xm3600(root) -> str:
  (root / 'images').mkdir(parents=True)
  for k, row in enumerate(XM3600_ROWS):
    pixels = np.full((20, 24, 3), 40 * (k + 1), np.uint8)
    Image.fromarray(pixels).save(root / 'images' / f'{row["image/key"]}.jpg')
  text = '\n'.join(json.dumps(r, ensure_ascii=False) for r in XM3600_ROWS)
  (root / 'captions.jsonl').write_text(text + '\n', encoding='utf-8')
  return str(root)


@pytest.fixture(scope='module')
def dirs(tmp_path_factory, make_coco_dir):
  root = tmp_path_factory.mktemp('xm3600_exp')
  return make_coco_dir(str(root / 'coco'), n_train=8, n_val=4), _write_xm3600(root / 'xm3600')


def test_train_step_on_its_coco_input_changes_the_model(dirs):
  """One real paxml train step of the experiment's task on a batch of its train input."""
  coco, xm = dirs
  # WARMUP_STEPS=1: the rate is 0 at step 0 and the peak at step 1, so step 2 updates.
  exp = experiments.PaliFinetuneXm3600Tiny(
    DATA_DIR=coco, EVAL_DATA_DIR=xm, BATCH_SIZE=2, WARMUP_STEPS=1
  )
  train = base_hyperparams.instantiate(exp.datasets()[0])
  batches = [jax.tree_util.tree_map(jnp.asarray, train.get_next()) for _ in range(2)]
  assert batches[0].image.shape == (2, exp.IMAGE_SIZE, exp.IMAGE_SIZE, 3)
  task_p = exp.task()
  task_p.model = params_lib.unsharded(task_p.model)  # one CPU device, no mesh context
  task = base_layer.instantiate(task_p)
  shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batches[0])
  with base_layer.JaxContext.new_context(hparams=base_layer.JaxContext.HParams(do_eval=False)):
    wps = task.model.abstract_init_with_metadata(shapes)
  states, _ = trainer_lib.initialize_model_state(
    task, jax.random.PRNGKey(0), shapes, do_init_checkpoint_rules=False, var_weight_hparams=wps
  )
  before = jax.tree_util.tree_map(np.asarray, states.mdl_vars)
  step = jax.jit(
    functools.partial(trainer_lib.train_step_single_learner, task, var_weight_hparams=wps)
  )
  losses = []
  for i, batch in enumerate(batches):
    states, out = step(states, jax.random.PRNGKey(i), batch)
    losses.append(float(out.loss))
  assert all(np.isfinite(losses)) and losses[0] > 0, losses
  changed = jax.tree_util.tree_map(
    lambda a, b: bool(np.any(a != np.asarray(b))), before, states.mdl_vars
  )
  assert changed['params']['mt5'] and all(jax.tree_util.tree_leaves(changed['params']['vit']))


def test_builds_coco_train_input_and_decodes_each_xm3600_language_from_its_test_split(dirs):
  coco, xm = dirs
  exp = experiments.PaliFinetuneXm3600Tiny(DATA_DIR=coco, EVAL_DATA_DIR=xm)
  train, *evals = exp.datasets()
  assert train.mixture_name == 'pali_coco_captions' and train.split_name == 'train'
  assert issubclass(train.cls, step_input.StepIndexedInput)
  want = ['pali_xm3600_de', 'pali_xm3600_en', 'pali_xm3600_zh']
  assert [e.mixture_name for e in evals] == want and {e.split_name for e in evals} == {'test'}
  decodes = exp.decoder_datasets()
  assert [d.mixture_name for d in decodes] == want
  # The zh decode program reads the one zh caption of XM3600's test split.
  zh = base_hyperparams.instantiate(decodes[2])
  batches = drain(zh)
  assert sum(float(b.eval_sample_weights.sum()) for b in batches) == 1
  zh._gen_targets_artifacts()  # what paxml scores decodes against (no public accessor)
  (target,) = zh._get_targets().values()
  assert target['targets_pretokenized'].decode() == '一个正方形'
  assert target['inputs_pretokenized'] == b'Generate caption in ZH:'


def test_languages_can_be_limited_and_missing_eval_dir_is_named(dirs):
  coco, xm = dirs
  exp = experiments.PaliFinetuneXm3600Tiny(DATA_DIR=coco, EVAL_DATA_DIR=xm, XM3600_LANGS=('en',))
  assert [d.mixture_name for d in exp.decoder_datasets()] == ['pali_xm3600_en']
  with pytest.raises(errors.ConfigError, match=r'needs EVAL_DATA_DIR .*captions\.jsonl'):
    experiments.PaliFinetuneXm3600Tiny(DATA_DIR=coco).datasets()
  with pytest.raises(errors.ConfigError, match='needs DATA_DIR'):
    experiments.PaliFinetuneXm3600Tiny(EVAL_DATA_DIR=xm).decoder_datasets()
  listing = registry.describe_finetune_families()
  assert 'EVAL_DATA_DIR (test): captions.jsonl' in listing


def test_other_experiments_keep_evaluating_the_validation_split(dirs):
  coco, _ = dirs
  exp = experiments.PaliFinetuneCocoCaptionsTiny(DATA_DIR=coco)
  assert {d.split_name for d in (*exp.datasets()[1:], *exp.decoder_datasets())} == {'validation'}
