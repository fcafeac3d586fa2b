"""PaliExperiment: the PaxML experiment every registered PaLI experiment extends.

Users tune UPPERCASE class attributes: in a subclass, or from the command line
through Fiddle's flags (paxml 1.4's legacy Fiddle flags API):

  python -m paxml.main --fdl_config=pali_pax.fiddle_configs.experiments.tiny_synthetic \
      --fdl.NUM_TRAIN_STEPS=50 --fdl.LEARNING_RATE=3e-3 --job_log_dir=runs/x

`--fdl_config` names any function returning `pax_fiddle.Config(<Experiment>)`;
every `--fdl.ATTR=VALUE` becomes a keyword of the experiment's constructor,
which overrides that attribute (unknown names are an error).
`pali-pax train --exp=NAME --fdl.ATTR=VALUE` is translated to that form.

Choosing a size: overriding MODEL (e.g. `--fdl.MODEL=tiny`) also applies that
size's row of `SIZE_PRESETS` (vocabulary size, mesh, image size, lengths,
batch; for 'tiny' also the CPU optimizer), except for attributes overridden
explicitly as well. A class body that sets MODEL gets the preset the same way
(its own values win); `sized(MODEL)` is that as a base class, for recipes
listed before it whose values must win over the size's:

  class Pali3BPretrain(PretrainRecipe, sized('3b')): ...
"""

import functools
from typing import Any

import jax
import seqio
from absl import logging
from paxml import base_experiment, seqio_input, tasks_lib
from praxis import base_input, decoder_hparams, optimizers, pax_fiddle

from pali_pax import model, validation
from pali_pax.core import batch as batch_lib
from pali_pax.core import errors, jax_compat
from pali_pax.fiddle_configs import input_specs, learner, pali, sharding, task
from pali_pax.fiddle_configs import lora as lora_configs
from pali_pax.layers import lora as lora_layers
from pali_pax.tasks import eval_input, feature_converter, step_input, vocab

# paxml 1.4's decode programs call np.unicode_ (xla_passthrough), gone in NumPy 2.
jax_compat.add_np_unicode()

# The attributes that change together with MODEL. 'tiny' / 'mini' are the CPU sizes: the
# shipped 2,100-id vocabulary (VOCAB_PATH None), one device, 32 px, short texts and
# the Adam settings the synthetic demo learns with. The pod sizes use mT5's
# vocabulary (set VOCAB_PATH to mT5's SentencePiece model) and PaLI's pretraining
# layout: 1024 TPU v4 chips as 2 slices of 512, 4-way model partitioning, 4 examples
# per chip (docs/pods.md: the compiled memory of this mesh, and meshes for other slices).
POD_ICI_MESH_SHAPE = (1, 128, 4)
POD_DCN_MESH_SHAPE = (1, 2, 1)
SIZE_PRESETS: dict[str, dict[str, Any]] = {
  'tiny': {
    'VOCAB_SIZE': vocab.SYNTHETIC_VOCAB_SIZE,
    'VOCAB_PATH': None,
    'IMAGE_SIZE': 32,
    'ICI_MESH_SHAPE': (1, 1, 1),
    'DCN_MESH_SHAPE': None,
    'INPUT_LEN': 24,
    'TARGET_LEN': 16,
    'MAX_DECODE_LEN': 16,
    'BATCH_SIZE': 32,
    'EVAL_BATCH_SIZE': 32,
    'OPTIMIZER': 'adam',
    'LEARNING_RATE': 3e-3,
    'WARMUP_STEPS': 50,
  },
  **{
    size: {
      'VOCAB_SIZE': batch_lib.MT5_VOCAB_SIZE,
      'IMAGE_SIZE': 224,
      'ICI_MESH_SHAPE': POD_ICI_MESH_SHAPE,
      'DCN_MESH_SHAPE': POD_DCN_MESH_SHAPE,
      'INPUT_LEN': 64,
      'TARGET_LEN': 64,
      'MAX_DECODE_LEN': 32,
      'BATCH_SIZE': 4096,
      # A multiple of the 256 data-parallel devices (each takes its share of a batch).
      'EVAL_BATCH_SIZE': 256,
      'OPTIMIZER': 'adafactor',
    }
    for size in ('3b', '15b', '17b')
  },
}
SIZE_PRESETS['mini'] = dict(SIZE_PRESETS['tiny'])  # the demo's size: same CPU row


def size_preset(model: str) -> dict[str, Any]:
  """SIZE_PRESETS[model]; ConfigError naming MODEL for an unknown size."""
  if model not in SIZE_PRESETS:
    raise errors.ConfigError(f'MODEL must be one of {sorted(SIZE_PRESETS)}, got {model!r}')
  return SIZE_PRESETS[model]


class PaliExperiment(base_experiment.BaseExperiment):
  """PaLI trained on a seqio mixture, evaluated and decoded on seqio tasks.

  Attributes (class constants, overridable per instance by keyword):
    MODEL: PaLI size key of `fiddle_configs.pali.PALI_SIZES`.
    VIT: None (the size's ViT) or a ViT variant with its patch ('mini/8', 'S/16':
      `fiddle_configs.vit.VIT_VARIANTS`) in its place; the mT5 stays the size's.
    IMAGE_SIZE: input resolution in pixels (224; 588 for the high-res phase).
    VOCAB_SIZE: vocabulary of the model (mT5: 250,112).
    TRAINABLE: which variables train (`learner.trainable_rules`): 'all',
      'no_vit' (PaLI's main pretraining), 'lora' (only the LoRA adapters),
      'decoder' (mT5 decoder and output head), 'attention' (mT5 self- and
      cross-attention, the PaliGemma colab's choice), or a list of regexes of the
      variables that train. A frozen variable gets no gradient and no optimizer
      state. None (default): from FREEZE_VIT.
    FREEZE_VIT: the older spelling, read only while TRAINABLE is None: True means
      TRAINABLE='no_vit', False 'all' (`trainable()` is the one place this is
      resolved; everything else reads `trainable()`).
    LORA_RANK / LORA_ALPHA: rank r and scale numerator of the LoRA adapters
      (each adds (alpha / r) B A x; B starts at 0, so step 0 is the base model).
      Adapters exist when TRAINABLE is 'lora' (or a list with a 'lora_' regex).
    LORA_TARGETS: regexes over layer paths that get adapters
      (`fiddle_configs.lora`; default: attention q/k/v/out, self and cross, and
      feed-forward wi/wo of the ViT and mT5).
    TRAIN_MIXTURE / EVAL_TASKS / DECODE_TASKS: seqio names.
    EVAL_SPLIT: the split eval and decode programs read ('test' for sets that
      have no validation split, such as XM3600).
    INPUT_LEN / TARGET_LEN: token lengths of prompt and target.
    BATCH_SIZE / EVAL_BATCH_SIZE: global batch sizes; each of the job's processes
      feeds BATCH_SIZE / process_count (see `per_process_batch`).
    OPTIMIZER: 'adafactor' or 'adam'. LEARNING_RATE: peak value.
    WARMUP_STEPS: linear warm-up to LEARNING_RATE, then LR_SCHEDULE.
    LR_SCHEDULE: 'rsqrt' (inverse square root of the step, T5X's and PaLI's
      pretraining decay; does not depend on NUM_TRAIN_STEPS) or 'cosine' (to 0
      at NUM_TRAIN_STEPS, big_vision's fine-tuning decay: short runs end annealed).
    LOSS_PER_EXAMPLE: each example's token-mean loss counts equally
      (`PaliModel.loss_per_example`), instead of every target token.
    NUM_TRAIN_STEPS, CHECKPOINT_EVERY, EVAL_EVERY, EVAL_BATCHES.
    DECODE_BATCHES: batches of each decode program; None = the whole split once
      (the last batch padded; padding rows get no metrics).
    SEED: data seed; the train batch of step s is a pure function of (SEED, s)
      (`pali_pax.tasks.step_input`), so a restarted run resumes exactly.
    MAX_DECODE_LEN: tokens generated by decode programs (after the start id).
    ICI_MESH_SHAPE / DCN_MESH_SHAPE: [replica, data, mdl] device mesh.
    FSDP: also split the weights (so gradients and optimizer state) over the
      data axis; what PaLI-17B needs to fit a 32 GiB TPU v4 (docs/pods.md).
    INIT_FROM: Pax checkpoint dir (…/checkpoints) whose weights start training;
      one saved at another IMAGE_SIZE gets its ViT position embedding resampled
      (`fiddle_configs.task`), any other shape mismatch is an error. LoRA
      adapters are not read from it (they start fresh).
    VOCAB_PATH: SentencePiece model (mT5's for the real sizes); None = the
      small multilingual one shipped for the synthetic tasks. Every task the
      experiment reads must use it (checked by `validate`, which paxml.main calls).
  """

  MODEL = 'tiny'
  VIT: str | None = None
  IMAGE_SIZE = 224
  VOCAB_SIZE = batch_lib.MT5_VOCAB_SIZE
  TRAINABLE: str | tuple[str, ...] | None = None
  FREEZE_VIT = True
  LORA_RANK = 8
  LORA_ALPHA = 16.0
  LORA_TARGETS: tuple[str, ...] = lora_configs.DEFAULT_TARGETS
  TRAIN_MIXTURE = 'pali_synthetic_mixture'
  EVAL_TASKS: tuple[str, ...] = ()
  DECODE_TASKS: tuple[str, ...] = ()
  EVAL_SPLIT = 'validation'
  INPUT_LEN = 64
  TARGET_LEN = 64
  BATCH_SIZE = 4096
  EVAL_BATCH_SIZE = 64
  OPTIMIZER = 'adafactor'
  LEARNING_RATE = 1e-2
  WARMUP_STEPS = 1000
  LR_SCHEDULE = 'rsqrt'
  LOSS_PER_EXAMPLE = False
  NUM_TRAIN_STEPS = 100_000
  CHECKPOINT_EVERY = 1000
  EVAL_EVERY = 1000
  EVAL_BATCHES = 10
  DECODE_BATCHES: int | None = None
  MAX_DECODE_LEN = 32
  SEED = 1234
  ICI_MESH_SHAPE: tuple[int, int, int] = (1, 1, 1)
  DCN_MESH_SHAPE: tuple[int, int, int] | None = None
  FSDP = False
  INIT_FROM: str | None = None
  VOCAB_PATH: str | None = None

  def __init_subclass__(cls, **kwargs: Any) -> None:
    """A class whose own body sets MODEL gets that size's preset (its own body's values win).

    The same rule as `--fdl.MODEL` on an instance (`__init__`): the size is applied
    at the level that names it, over everything inherited.
    """
    super().__init_subclass__(**kwargs)
    if 'MODEL' in cls.__dict__:
      for name, value in size_preset(cls.MODEL).items():
        if name not in cls.__dict__:
          setattr(cls, name, value)

  def __init__(self, **overrides: Any) -> None:
    super().__init__()
    for name in overrides:
      if not name.isupper() or not hasattr(type(self), name):
        valid = sorted(n for n in dir(type(self)) if n.isupper())
        raise errors.ConfigError(f'{type(self).__name__} has no attribute {name!r}; valid: {valid}')
    model = overrides.get('MODEL', self.MODEL)
    if model != type(self).MODEL:
      for name, value in size_preset(model).items():
        setattr(self, name, value)
    for name, value in overrides.items():
      setattr(self, name, value)

  def validate(self) -> None:
    """Called by paxml.main before building anything: ConfigError naming the attribute.

    The mesh must cover exactly the job's devices, and VOCAB_PATH must fit
    VOCAB_SIZE and be the vocabulary of every task the experiment reads.
    """
    validation.check_mesh(self.ICI_MESH_SHAPE, self.DCN_MESH_SHAPE, jax.device_count())
    self.register_tasks()
    names = (self.TRAIN_MIXTURE, *self.EVAL_TASKS, *self.DECODE_TASKS)
    check_registered(names)
    validation.check_vocab(self.VOCAB_PATH, self.VOCAB_SIZE, names)

  # ---------------------------------------------------------- what trains
  def trainable(self) -> str | tuple[str, ...]:
    """TRAINABLE, or from FREEZE_VIT while TRAINABLE is None (the one place it is mapped)."""
    if self.TRAINABLE is None:
      return 'no_vit' if self.FREEZE_VIT else 'all'
    if isinstance(self.TRAINABLE, str):
      return self.TRAINABLE
    return tuple(self.TRAINABLE)

  def uses_lora(self) -> bool:
    """Whether the model has LoRA adapters: TRAINABLE 'lora', or regexes naming 'lora_'."""
    trainable = self.trainable()
    if isinstance(trainable, str):
      return trainable == 'lora'
    return any('lora_' in t for t in trainable)

  # ------------------------------------------------------------------ model
  def model_config(self) -> pax_fiddle.Config[model.PaliModel]:
    cfg = pali.pali_config(
      self.MODEL,
      image_size=self.IMAGE_SIZE,
      vocab_size=self.VOCAB_SIZE,
      vit=self.VIT,
      # Frozen ViT: also no backward pass through it.
      freeze_vit=not learner.trains_vit(self.trainable()),
    )
    if self.uses_lora():
      lora_configs.apply_lora(cfg, self.LORA_RANK, self.LORA_ALPHA, self.LORA_TARGETS)
    cfg.loss_per_example = self.LOSS_PER_EXAMPLE
    cfg.decoder_tpl = decoder_hparams.GreedyDecoderHParams(
      seqlen=self.MAX_DECODE_LEN + 1, eos_id=batch_lib.EOS_ID
    )
    return sharding.shard_pali(cfg, self.ICI_MESH_SHAPE, self.DCN_MESH_SHAPE, fsdp=self.FSDP)

  def optimizer_config(self) -> pax_fiddle.Config[optimizers.BaseOptimizer]:
    """OPTIMIZER at LEARNING_RATE, warmed up over WARMUP_STEPS, then LR_SCHEDULE (`learner`)."""
    schedule = learner.warmup_schedule(self.LR_SCHEDULE, self.WARMUP_STEPS, self.NUM_TRAIN_STEPS)
    return learner.optimizer(self.OPTIMIZER, self.LEARNING_RATE, schedule)

  def task(self) -> pax_fiddle.Config[tasks_lib.SingleTask]:
    task_p = pax_fiddle.Config(task.PaliTask, name='pali')
    task_p.model = self.model_config()
    # Frozen variables (TRAINABLE): no gradient and no optimizer slots.
    trainable, frozen = learner.trainable_rules(self.trainable())
    task_p.train.learner = learner.learner(
      'total_loss', self.optimizer_config(), frozen=frozen, trainable=trainable
    )
    tr = task_p.train
    tr.num_train_steps = self.NUM_TRAIN_STEPS
    tr.save_interval_steps = self.CHECKPOINT_EVERY
    tr.save_max_to_keep = 3
    tr.eval_interval_steps = self.EVAL_EVERY
    tr.decode_interval_steps = self.EVAL_EVERY
    tr.summary_interval_steps = max(1, min(100, self.EVAL_EVERY))
    tr.log_train_output_interval_steps = tr.summary_interval_steps
    task_p.train.always_use_train_for_model_init = True
    if self.INIT_FROM:
      task_p.train.init_from_checkpoint_rules = {
        self.INIT_FROM: tasks_lib.CheckpointLoadingRules(
          task_p=task_p.clone(),
          load_rules=[(r'(.*)', '{}')],
          input_specs_provider_p=self.get_input_specs_provider_params(),
          load_step=False,
          load_opt_states=False,
          # LoRA adapters start fresh (B = 0): the base model's checkpoint has none.
          ignore_rules=[lora_layers.ADAPTER_VARIABLES] if self.uses_lora() else None,
        )
      }
    return task_p

  # ----------------------------------------------------------------- inputs
  def register_tasks(self) -> None:
    """Registers the seqio tasks this experiment reads (subclasses override)."""

  def _input(
    self,
    name: str,
    split: str,
    batch_size: int,
    is_training: bool,
    num_batches: int | None = -1,
  ) -> pax_fiddle.Config[base_input.BaseInput]:
    """Train: the step-indexed input (exact resume); eval / decode: paxml's SeqIOInput.

    Eval / decode use it without tf.data autotuning (`eval_input`: a reset no longer
    waits up to a minute for the autotuner). They read the split once per program
    (reset_for_eval), the last batch padded (SeqIOInput's eval_auto_pad; padding
    rows get no metrics); num_batches None: paxml takes targets from the whole
    split, so metrics cover it.

    A training mixture with a streaming-only source (TFRecord / TFDS: no random
    access by index) falls back to a shuffled, repeated SeqIOInput, with a warning:
    it trains, but a restarted run does not replay the same batches.
    """
    lengths = {'inputs': self.INPUT_LEN, 'targets': self.TARGET_LEN}
    converter = feature_converter.PaliFeatureConverter(pack=False)
    streaming = is_training and not step_input.random_access(self.TRAIN_MIXTURE)
    if streaming:
      logging.warning(
        '%s: %s has a streaming-only source; training reads it with a shuffled SeqIOInput, '
        'so resume after a restart is not exact (docs/reliability.md)',
        type(self).__name__,
        self.TRAIN_MIXTURE,
      )
    elif is_training:
      return pax_fiddle.Config(
        step_input.StepIndexedInput,
        name=name,
        mixture_name=self.TRAIN_MIXTURE,
        split_name=split,
        task_feature_lengths=lengths,
        feature_converter=converter,
        is_training=True,
        batch_size=batch_size,
        input_random_seed=self.SEED,
      )
    return pax_fiddle.Config(
      seqio_input.SeqIOInput if is_training else eval_input.SeqIOEvalInput,
      name=name,
      mixture_name=self.TRAIN_MIXTURE if is_training else name,
      split_name=split,
      task_feature_lengths=lengths,
      feature_converter=converter,
      is_training=is_training,
      batch_size=batch_size,
      shuffle=is_training,
      repeat=is_training,
      reset_for_eval=not is_training,
      eval_loop_num_batches=num_batches,
      input_random_seed=self.SEED,
    )

  def per_process_batch(self, attr: str) -> int:
    """Global batch `attr` ('BATCH_SIZE' / 'EVAL_BATCH_SIZE') split over this job's processes.

    praxis' `BaseInput.batch_size` is per process; ours are global, so every
    process feeds its contiguous share and the global batch does not depend on
    the number of processes.

    Raises:
      ConfigError: the batch does not divide by the process count or by the
        data-parallel devices (replica x data axes of ICI_MESH_SHAPE x DCN_MESH_SHAPE).
    """
    batch = int(getattr(self, attr))
    processes = jax.process_count()
    ici = tuple(self.ICI_MESH_SHAPE)
    dcn = tuple(self.DCN_MESH_SHAPE) if self.DCN_MESH_SHAPE is not None else (1, 1, 1)
    data_parallel = ici[0] * ici[1] * dcn[0] * dcn[1]
    if batch <= 0 or batch % processes:
      raise errors.ConfigError(
        f'{type(self).__name__}: {attr}={batch} is global and must divide evenly over the '
        f'{processes} processes of this job'
      )
    if batch % data_parallel:
      raise errors.ConfigError(
        f'{type(self).__name__}: {attr}={batch} must be a multiple of the {data_parallel} '
        f'data-parallel devices (replica x data of ICI_MESH_SHAPE={list(ici)} x '
        f'DCN_MESH_SHAPE={list(dcn) if self.DCN_MESH_SHAPE is not None else None})'
      )
    return batch // processes

  def get_input_specs_provider_params(
    self,
  ) -> pax_fiddle.Config[base_input.BaseInputSpecsProvider]:
    """The train batch's specs from the sizes (`input_specs`), no pipeline built."""
    return pax_fiddle.Config(
      input_specs.BatchSpecsProvider,
      image_size=self.IMAGE_SIZE,
      batch_size=self.per_process_batch('BATCH_SIZE'),
      input_len=self.INPUT_LEN,
      target_len=self.TARGET_LEN,
    )

  def datasets(self) -> list[pax_fiddle.Config[base_input.BaseInput]]:
    self.register_tasks()
    check_registered((self.TRAIN_MIXTURE, *self.EVAL_TASKS))
    train = self._input('train', 'train', self.per_process_batch('BATCH_SIZE'), True)
    eval_batch = self.per_process_batch('EVAL_BATCH_SIZE')
    evals = [
      self._input(t, self.EVAL_SPLIT, eval_batch, False, self.EVAL_BATCHES) for t in self.EVAL_TASKS
    ]
    return [train, *evals]

  def decoder_datasets(self) -> list[pax_fiddle.Config[base_input.BaseInput]]:
    self.register_tasks()
    check_registered(self.DECODE_TASKS)
    eval_batch = self.per_process_batch('EVAL_BATCH_SIZE')
    return [
      self._input(t, self.EVAL_SPLIT, eval_batch, False, self.DECODE_BATCHES)
      for t in self.DECODE_TASKS
    ]


@functools.cache
def sized(model: str) -> type[PaliExperiment]:
  """The base class of size `model`: MODEL and SIZE_PRESETS[model] over PaliExperiment.

  Bases listed before it (data and recipe mixins) override the preset's values.
  """
  size_preset(model)
  doc = f'PaliExperiment with MODEL={model!r} and SIZE_PRESETS[{model!r}].'
  return type(f'PaliSize{model.upper()}', (PaliExperiment,), {'MODEL': model, '__doc__': doc})


def check_registered(names: tuple[str, ...]) -> None:
  """Clear error when an experiment names a seqio task that is not registered."""
  for name in names:
    if name not in seqio.TaskRegistry.names() and name not in seqio.MixtureRegistry.names():
      raise errors.ConfigError(f'seqio task or mixture {name!r} is not registered')
