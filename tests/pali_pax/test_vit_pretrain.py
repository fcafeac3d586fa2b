"""The demo's ViT pretraining: labels, loss, learning, and the start it gives a job."""

import json

import numpy as np
import pytest
from flax import traverse_util

from pali_pax import vit_pretrain
from pali_pax.fiddle_configs import vit as vit_configs
from pali_pax.tasks import synthetic
from pali_pax.tasks import synthetic_words as words

SIZE = 32


def tiny_vit():
  return vit_configs.vit_config('tiny/8', image_size=SIZE)


def test_labels_follow_the_generators_scenes_and_words():
  # Batch 1 of 24: examples 24..47.
  scenes = next(vit_pretrain.labelled_batches('caption', 1, 1, 24, SIZE, seed=3))
  for i in range(24):
    ex = synthetic.generate('caption', 'train', 24 + i, SIZE, seed=3)
    n = len(ex.objects)
    assert scenes['count'][i] == n - 1
    for k in range(vit_pretrain.MAX_OBJECTS):
      if k < n:
        obj = ex.objects[k]
        assert words.SHAPES[scenes[f'shape{k}'][i]] == obj.shape
        assert words.COLOURS[scenes[f'colour{k}'][i]] == obj.colour
        np.testing.assert_allclose(scenes['box'][i, k] * SIZE, obj.box)
      else:  # the extra 'no object' class
        assert scenes[f'shape{k}'][i] == len(words.SHAPES)
        assert scenes[f'colour{k}'][i] == len(words.COLOURS)
    np.testing.assert_array_equal(scenes['image'][i], ex.image)
  ocr = next(vit_pretrain.labelled_batches('ocr', 0, 1, 16, SIZE, seed=3))
  read = [synthetic.generate('ocr', 'train', i, SIZE, seed=3).word for i in range(16)]
  assert [words.OCR_WORDS[w] for w in ocr['word']] == read


def test_loss_of_uninformed_heads_is_the_sum_of_their_log_classes():
  import jax.numpy as jnp

  b = next(vit_pretrain.mixed_batches(0, 1, 8, SIZE, seed=1))
  logits = {name: jnp.zeros((8, c)) for name, c in vit_pretrain.HEADS.items()}
  # Uniform logits cost log(classes) per head whatever the label; boxes at the targets
  # cost nothing; a box 0.1 off in every coordinate costs 0.4 per slot.
  expected = sum(np.log(c) for c in vit_pretrain.HEADS.values())
  np.testing.assert_allclose(vit_pretrain.loss(logits, b['box'], b), expected, rtol=1e-6)
  np.testing.assert_allclose(
    vit_pretrain.loss(logits, b['box'] + 0.1, b), expected + 0.4, rtol=1e-6
  )


def test_short_pretraining_learns_counts_and_colours():
  trainer = vit_pretrain.Pretrainer(tiny_vit(), seed=0)
  trainer.train(150, data_seed=5, progress=False)
  acc = trainer.accuracy(data_seed=6, n=400)
  # Chance: count 1/2, colour 1/5 (the first slot always holds an object), word 1/40.
  assert acc['count'] > 0.75 and acc['colour0'] > 0.5, acc
  assert 0.0 < acc['box_l1'] < 0.25, acc


def test_demo_starts_its_job_from_the_pretrained_vit(tmp_path, monkeypatch):
  from pali_pax.cli import demo, pretrain_vit
  from pali_pax.fiddle_configs import experiments
  from pali_pax.inference import Predictor

  monkeypatch.setattr(experiments.PaliTinySyntheticPretrainedVit, 'VIT_PRETRAIN_STEPS', 20)
  job = tmp_path / 'job'
  npz = pretrain_vit.start_job(demo.EXPERIMENT, str(job), seed=11)
  meta = json.loads((job / 'pali_pax.json').read_text())
  assert meta['experiment'] == demo.EXPERIMENT and meta['overrides'] == {'SEED': 11}
  assert meta['sources']['vit'] == npz
  # The step-0 checkpoint holds the very weights a second pretraining with the same seeds
  # makes: the pretraining repeats exactly, and the conversion keeps every bit.
  expected, _ = vit_pretrain.pretrain(tiny_vit(), 20, 11, 12, progress=False)
  restored = Predictor.from_checkpoint(str(job)).params['vit']
  want = traverse_util.flatten_dict(expected)
  got = traverse_util.flatten_dict(restored)
  assert set(want) <= set(got)
  for key, value in want.items():
    np.testing.assert_array_equal(np.asarray(got[key]).reshape(np.shape(value)), value)
  with pytest.raises(FileExistsError, match='already holds checkpoints'):
    pretrain_vit.start_job(demo.EXPERIMENT, str(job))


def test_pretraining_is_for_the_synthetic_scenes():
  from pali_pax.cli import pretrain_vit
  from pali_pax.core import errors

  with pytest.raises(errors.ConfigError, match='pali-pax convert --vit'):
    pretrain_vit.start_job('PaliFinetuneCocoCaptionsTiny', '/nonexistent/job')


def test_experiment_freezes_the_vit_it_starts_from():
  from pali_pax.fiddle_configs import experiments

  exp = experiments.PaliTinySyntheticPretrainedVit()
  assert exp.trainable() == 'no_vit' and exp.VIT_PRETRAIN_STEPS > 0
  assert experiments.PaliTinySynthetic().trainable() == 'all'
  from pali_pax.cli import pretrain_vit

  assert pretrain_vit.starts_pretrained(exp)
  assert pretrain_vit.starts_pretrained(experiments.PaliTinySyntheticVariedOcr)
  assert not pretrain_vit.starts_pretrained(experiments.PaliTinySynthetic())
  assert not pretrain_vit.starts_pretrained(experiments.PaliFinetuneCocoCaptionsTiny())


@pytest.mark.parametrize('steps', [0, -3])
def test_pretraining_needs_steps(steps):
  with pytest.raises(ValueError, match='steps'):
    vit_pretrain.Pretrainer(tiny_vit(), seed=0).train(steps, data_seed=1, progress=False)


def test_train_refuses_a_frozen_vit_that_was_never_pretrained(tmp_path):
  from pali_pax.cli import demo, train
  from pali_pax.core import errors

  job = tmp_path / 'job'
  argv = [f'--exp={demo.EXPERIMENT}', f'--job_dir={job}', '--mode=train', '--no_compilation_cache']
  with pytest.raises(errors.ConfigError, match='pali-pax pretrain-vit'):
    train.prepare(argv)
  assert not job.exists()  # refused before anything is written
  # Trained whole, or from INIT_FROM, the same experiment needs no pretrained start.
  train.prepare([*argv, "--fdl.TRAINABLE='all'"])
  assert (job / 'pali_pax.json').exists()
