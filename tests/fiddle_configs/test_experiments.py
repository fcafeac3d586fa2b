"""Registered experiments: registry, overrides, paper recipes (abstract, no allocation)."""

import numpy as np
import pytest
from praxis import optimizers, pax_fiddle, schedules

from pali_pax import param_count
from pali_pax.core import errors
from pali_pax.fiddle_configs import experiments, registry


def test_registry_lists_and_resolves_short_and_qualified_names():
  names = registry.names()
  for want in (
    'PaliTinySynthetic',
    'Pali3BPretrain',
    'Pali15BPretrain',
    'Pali17BPretrain',
    'Pali17BHighRes',
    'PaliFinetuneCocoCaptions',
    'PaliFinetuneVqaV2',
  ):
    assert want in names
  assert registry.get_experiment('Pali17BPretrain') is experiments.Pali17BPretrain
  assert (
    registry.get_experiment('pali_pax.fiddle_configs.experiments.Pali3BPretrain')
    is experiments.Pali3BPretrain
  )
  with pytest.raises(ValueError, match='unknown experiment'):
    registry.get_experiment('NoSuchExperiment')
  assert 'Pali17BPretrain' in registry.describe_experiments()


def test_fiddle_overrides_reach_the_experiment():
  cfg = experiments.tiny_synthetic()
  cfg.NUM_TRAIN_STEPS = 7
  cfg.LEARNING_RATE = 0.5
  exp = pax_fiddle.build(cfg)
  assert exp.NUM_TRAIN_STEPS == 7
  task = exp.task()
  assert task.train.num_train_steps == 7
  assert task.train.learner.optimizer.learning_rate == 0.5
  # Class defaults are untouched.
  assert experiments.PaliTinySynthetic.NUM_TRAIN_STEPS != 7


def test_unknown_attribute_is_an_error():
  with pytest.raises(ValueError, match='NUM_TRAIN_STEP'):
    experiments.PaliTinySynthetic(NUM_TRAIN_STEP=3)


@pytest.mark.parametrize(
  'name, lr, devices, px',
  [
    ('Pali3BPretrain', 1e-2, 1024, 224),
    ('Pali15BPretrain', 5e-3, 1024, 224),
    ('Pali17BPretrain', 5e-3, 1024, 224),
    ('Pali17BHighRes', 5e-3, 1024, 588),
  ],
)
def test_paper_recipes(name, lr, devices, px):
  exp = registry.get_experiment(name)()
  task = exp.task()
  opt = task.train.learner.optimizer
  assert opt.learning_rate == lr
  assert opt.cls is optimizers.ShardedAdafactor
  assert opt.lr_schedule.cls is schedules.LinearRampupSqrtDecay
  mesh = task.model.ici_mesh_shape
  assert int(np.prod(mesh) * np.prod(task.model.dcn_mesh_shape)) == devices
  assert task.model.vit_tpl.image_size == px
  frozen = task.train.learner.bprop_variable_exclusion
  if name == 'Pali17BHighRes':
    assert not exp.FREEZE_VIT and not frozen  # every parameter trains
  else:
    assert exp.BATCH_SIZE == 4096 and exp.WARMUP_STEPS == 1000
    assert frozen == ['.*params/vit/.*'] and task.model.freeze_vit
  assert mesh[2] == 4  # 4-way model partitioning (PaLI-17B's; the memory plan's for all sizes)
  if name != 'Pali17BHighRes':  # (its 588 px synthetic tasks would clash with the 224 px ones)
    # The recipe's inputs build on its own mesh (global batches divide the data axis).
    train, *_ = exp.datasets()
    assert train.batch_size == exp.BATCH_SIZE


def test_schedule_is_linear_warmup_then_inverse_sqrt():
  sched = pax_fiddle.instantiate(experiments.Pali3BPretrain().optimizer_config().lr_schedule)
  values = [float(sched.value_at(np.array(s))) for s in (100, 500, 1000, 4000, 16000)]
  np.testing.assert_allclose(values, [0.1, 0.5, 1.0, 0.5, 0.25], rtol=1e-6)


def test_cosine_schedule_reaches_zero_at_the_last_step():
  exp = experiments.PaliTinySynthetic(LR_SCHEDULE='cosine', WARMUP_STEPS=100, NUM_TRAIN_STEPS=1100)
  sched = pax_fiddle.instantiate(exp.optimizer_config().lr_schedule)
  values = [float(sched.value_at(np.array(s))) for s in (50, 100, 350, 600, 850, 1100, 2000)]
  # Warm-up to 1, then (1 + cos(pi * t)) / 2 over the 1000 decay steps: t = 1/4, 1/2, 3/4, 1.
  c = np.cos(np.pi / 4)
  want = [0.5, 1.0, (1 + c) / 2, 0.5, (1 - c) / 2, 0.0, 0.0]
  np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('steps', [1, 50])
def test_cosine_schedule_of_a_run_within_its_warmup_builds(steps):
  # `pali-pax train --fdl.NUM_TRAIN_STEPS=1` (a smoke run) of the cosine demo.
  exp = experiments.PaliTinySynthetic(NUM_TRAIN_STEPS=steps)
  sched = pax_fiddle.instantiate(exp.optimizer_config().lr_schedule)
  assert float(sched.value_at(np.array(25))) == pytest.approx(25 / exp.WARMUP_STEPS)
  assert float(sched.value_at(np.array(exp.WARMUP_STEPS + 1))) == pytest.approx(0.0, abs=1e-6)


def test_unknown_schedule_is_an_error_naming_it():
  with pytest.raises(errors.ConfigError, match="LR_SCHEDULE must be 'rsqrt' or 'cosine'"):
    experiments.PaliTinySynthetic(LR_SCHEDULE='linear').optimizer_config()


def test_tiny_experiment_inputs_are_registered_seqio_tasks():
  exp = experiments.PaliTinySynthetic()
  train, *evals = exp.datasets()
  assert train.mixture_name == experiments.PaliTinySynthetic.TRAIN_MIXTURE
  assert train.is_training and not evals[0].is_training
  decodes = exp.decoder_datasets()
  assert [d.mixture_name for d in decodes] == list(exp.DECODE_TASKS)


def test_streaming_train_sources_fall_back_to_seqio_input(tmp_path):
  import tensorflow as tf
  from paxml import seqio_input

  from pali_pax.tasks import finetune_tasks, readers, step_input

  path = str(tmp_path / 'train.tfrecord')
  with tf.io.TFRecordWriter(path):
    pass  # the config is built without reading it
  name = finetune_tasks.register_task(
    'pali_tfrecord_fallback_test', readers.tfrecord_source(path), 'caption', image_size=32
  )
  exp = experiments.PaliTinySynthetic()
  assert step_input.random_access(exp.TRAIN_MIXTURE) and not step_input.random_access(name)
  assert exp.datasets()[0].cls is step_input.StepIndexedInput
  exp.TRAIN_MIXTURE = name
  train = exp.datasets()[0]
  assert train.cls is seqio_input.SeqIOInput and train.mixture_name == name
  assert train.is_training and train.shuffle and train.repeat


def test_finetune_without_data_dir_is_a_clear_error():
  with pytest.raises(ValueError, match='DATA_DIR'):
    experiments.PaliFinetuneVqaV2().datasets()


def test_global_batch_is_split_over_processes_or_an_error_naming_it(monkeypatch):
  import jax

  assert experiments.PaliTinySynthetic().per_process_batch('BATCH_SIZE') == 32
  pod = experiments.Pali17BPretrain()  # data-parallel 128 x 2 = 256 devices
  assert pod.per_process_batch('BATCH_SIZE') == 4096
  with pytest.raises(
    ValueError, match=r'BATCH_SIZE=32 .* 3 data-parallel .*ICI_MESH_SHAPE=\[1, 3, 1\]'
  ):
    experiments.PaliTinySynthetic(ICI_MESH_SHAPE=(1, 3, 1)).per_process_batch('BATCH_SIZE')
  with pytest.raises(ValueError, match=r'EVAL_BATCH_SIZE=64 .*DCN_MESH_SHAPE=\[1, 2, 1\]'):
    experiments.Pali17BPretrain(EVAL_BATCH_SIZE=64).per_process_batch('EVAL_BATCH_SIZE')
  # As a 64-host job would see it (paxml has called jax.distributed.initialize by then).
  monkeypatch.setattr(jax, 'process_count', lambda: 64)
  assert pod.per_process_batch('BATCH_SIZE') == 64
  with pytest.raises(ValueError, match=r'BATCH_SIZE=32 .* over the 64 processes'):
    experiments.PaliTinySynthetic().per_process_batch('BATCH_SIZE')


@pytest.mark.parametrize('name', ['PaliTinySynthetic', 'PaliMiniSynthetic'])
def test_synthetic_experiments_hold_every_detection_target(name):
  """Two boxes (4 coordinate pieces + label each) and EOS fit TARGET_LEN and MAX_DECODE_LEN."""
  from pali_pax.tasks import synthetic, vocab

  exp = getattr(experiments, name)()
  tokens = vocab.get_vocabulary(exp.VOCAB_PATH)
  targets = [synthetic.generate('detection', 'validation', i, exp.IMAGE_SIZE) for i in range(64)]
  assert any(len(t.objects) == 2 for t in targets)  # 2-box scenes: the longest targets
  longest = max(len(tokens.encode(t.targets)) for t in targets)
  assert 10 <= longest and longest + 1 <= min(exp.TARGET_LEN, exp.MAX_DECODE_LEN)


def test_mini_experiment_model_is_the_mini_pali():
  exp = experiments.PaliMiniSynthetic()
  counts = param_count.component_counts(exp.model_config())
  # ViT: 2 blocks of width 64 (4*64^2 attention + 2*64*128 MLP, each ~33k) plus the patch
  # embedding and position table; mT5: two 2,100 x 64 tables (~269k) plus 4 blocks.
  assert 60_000 < counts['vit'] < 120_000
  assert 300_000 < counts['mt5'] < 600_000
  # Its own mixture (other rates than the tiny experiment's), detection weighted most.
  exp.register_tasks()
  assert exp.TRAIN_MIXTURE != experiments.PaliTinySynthetic.TRAIN_MIXTURE
  rates = dict(step_input_rates(exp.TRAIN_MIXTURE))
  assert max(rates, key=rates.get).endswith('detection_32mini')


def step_input_rates(name):
  from pali_pax.tasks import step_input

  return [(task.name, rate) for task, rate in step_input.tasks_and_rates(name)]


def test_synthetic_eval_inputs_skip_the_padding_count_only_when_no_batch_can_be_partial():
  exp = experiments.PaliTinySynthetic()
  inputs = [*exp.datasets()[1:], *exp.decoder_datasets()]
  assert len(inputs) == 5
  # 2 batches of 32 of a 512-example split: paxml would count and cache the split to pad nothing.
  assert [p.eval_auto_pad for p in inputs] == [False] * 5
  exp.DECODE_BATCHES = exp.VALIDATION_SIZE // exp.EVAL_BATCH_SIZE + 1  # one batch past the split
  assert all(p.eval_auto_pad for p in exp.decoder_datasets())
  exp.DECODE_BATCHES = None  # the whole split: its last batch may be partial
  assert all(p.eval_auto_pad for p in exp.decoder_datasets())
