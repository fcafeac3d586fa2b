"""Learner configs: PaLI's Adafactor, Adam, warm-up schedules and freezing by regex.

Which variables train (an experiment's TRAINABLE) is decided here too
(`trainable_rules`): a preset name or a list of regexes becomes the learner's
`bprop_variable_inclusion` / `bprop_variable_exclusion`, so a frozen variable
gets no gradient and no optimizer state (paxml masks both by these regexes).

One module for every learner the project builds: the experiments
(`PaliExperiment.optimizer_config` / `task`), the example task (`examples`) and
the memory plan (`benchmarks/memory_plan.py`, whose figures are docs/pods.md's
memory column), so all of them train with the same optimizer settings.
"""

from collections.abc import Sequence

from paxml import learners
from praxis import optimizers, pax_fiddle, schedules

from pali_pax.core import errors
from pali_pax.layers import lora

# Variables of the ViT (PaLI's main pretraining freezes them): no gradient, no optimizer slots.
VIT_VARIABLES = '.*params/vit/.*'
# The mT5 decoder stack and the output head (the token embedding, shared with the
# encoder, stays frozen).
DECODER_VARIABLES = ('.*params/mt5/decoder/.*', '.*params/mt5/softmax/.*')
# Attention of the language model (self and cross; the PaliGemma colab's 16 GB choice).
ATTENTION_VARIABLES = '.*params/mt5/.*_attention/.*'

# TRAINABLE preset -> (bprop_variable_inclusion, bprop_variable_exclusion); paxml
# allows only one of the two to be set.
TRAINABLE_PRESETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
  'all': ((), ()),
  'no_vit': ((), (VIT_VARIABLES,)),
  'lora': ((lora.ADAPTER_VARIABLES,), ()),
  'decoder': (DECODER_VARIABLES, ()),
  'attention': ((ATTENTION_VARIABLES,), ()),
}


def trainable_rules(trainable: str | Sequence[str]) -> tuple[list[str], list[str]]:
  """(inclusion, exclusion) regexes of a TRAINABLE value.

  Args:
    trainable: a `TRAINABLE_PRESETS` name, or regexes (fully matching variable
      names such as 'params/mt5/decoder/x_layers_0/ff/ffn_layer2/linear/w') of the
      variables that train; every other variable is frozen.

  Raises:
    ConfigError: an unknown preset name, or an empty list.
  """
  if isinstance(trainable, str):
    if trainable not in TRAINABLE_PRESETS:
      raise errors.ConfigError(
        f'TRAINABLE must be one of {sorted(TRAINABLE_PRESETS)} or a list of regexes, '
        f'got {trainable!r}'
      )
    inclusion, exclusion = TRAINABLE_PRESETS[trainable]
    return list(inclusion), list(exclusion)
  if not trainable:
    raise errors.ConfigError('TRAINABLE is an empty list: nothing would train')
  return list(trainable), []


def trains_vit(trainable: str | Sequence[str]) -> bool:
  """Whether any ViT variable may train: False lets the model stop gradients at the ViT.

  Presets know; for a list of regexes the answer is True (the ViT's backward pass
  is then only cut by paxml's gradient mask).
  """
  return trainable not in ('no_vit', 'decoder', 'attention')


def constant_schedule() -> pax_fiddle.Config[schedules.BaseSchedule]:
  """Multiplier 1 at every step (the optimizer's `learning_rate` throughout)."""
  return pax_fiddle.Config(schedules.Constant)


def warmup_schedule(
  name: str, warmup_steps: int, total_steps: int
) -> pax_fiddle.Config[schedules.BaseSchedule]:
  """Linear warm-up to 1 over `warmup_steps`, then `name`'s decay.

  'rsqrt': inverse square root of the step (T5X's and PaLI's pretraining decay;
  independent of `total_steps`). 'cosine': to 0 at `total_steps` (big_vision's
  fine-tuning decay: short runs end annealed).

  Raises:
    ConfigError: `name` is not 'rsqrt' or 'cosine'.
  """
  if name == 'rsqrt':
    return pax_fiddle.Config(schedules.LinearRampupSqrtDecay, peak=1.0, warmup_steps=warmup_steps)
  if name == 'cosine':
    return pax_fiddle.Config(
      schedules.LinearRampupCosineDecay,
      warmup_steps=warmup_steps,
      decay_start=warmup_steps,
      # A run no longer than its warm-up (a 1-step smoke run) still gets a
      # one-step decay: praxis refuses an empty one.
      decay_end=max(total_steps, warmup_steps + 1),
      min_ratio=0.0,
      max=1.0,
    )
  raise errors.ConfigError(f"LR_SCHEDULE must be 'rsqrt' or 'cosine', got {name!r}")


def adafactor(
  learning_rate: float, lr_schedule: pax_fiddle.Config[schedules.BaseSchedule]
) -> pax_fiddle.Config[optimizers.BaseOptimizer]:
  """PaLI's Adafactor: factored second moments, no first moment, update clipping 1.0."""
  return pax_fiddle.Config(
    optimizers.ShardedAdafactor,
    learning_rate=learning_rate,
    lr_schedule=lr_schedule,
    decay_method='adam',
    beta1=0.0,
    decay_adam=0.8,
    multiply_by_parameter_scale=False,
    clip_threshold=1.0,
    factored=True,
  )


def adam(
  learning_rate: float,
  lr_schedule: pax_fiddle.Config[schedules.BaseSchedule],
  clip_gradient_norm_to_value: float | None = 1.0,
) -> pax_fiddle.Config[optimizers.BaseOptimizer]:
  """praxis Adam; gradients clipped to global norm 1 (None: praxis' default, no clipping)."""
  cfg = pax_fiddle.Config(optimizers.Adam, learning_rate=learning_rate, lr_schedule=lr_schedule)
  if clip_gradient_norm_to_value is not None:
    cfg.clip_gradient_norm_to_value = clip_gradient_norm_to_value
  return cfg


def optimizer(
  name: str, learning_rate: float, lr_schedule: pax_fiddle.Config[schedules.BaseSchedule]
) -> pax_fiddle.Config[optimizers.BaseOptimizer]:
  """`adafactor` or `adam` by name (an experiment's OPTIMIZER).

  Raises:
    ConfigError: `name` is not 'adafactor' or 'adam'.
  """
  if name == 'adafactor':
    return adafactor(learning_rate, lr_schedule)
  if name == 'adam':
    return adam(learning_rate, lr_schedule)
  raise errors.ConfigError(f"OPTIMIZER must be 'adafactor' or 'adam', got {name!r}")


def learner(
  loss_name: str,
  optimizer_cfg: pax_fiddle.Config[optimizers.BaseOptimizer],
  frozen: Sequence[str] = (),
  trainable: Sequence[str] = (),
) -> pax_fiddle.Config[learners.Learner]:
  """paxml Learner minimising the model metric `loss_name`.

  Args:
    loss_name: the metric the model's loss returns (PaliModel: 'total_loss').
    optimizer_cfg: e.g. `adafactor(...)`.
    frozen: regexes of variable paths that get no gradient and no optimizer
      state (e.g. `[VIT_VARIABLES]`).
    trainable: regexes of the only variables that train (the rest as `frozen`);
      not together with `frozen` (see `trainable_rules`).
  """
  if frozen and trainable:
    raise errors.ConfigError('a learner takes frozen or trainable regexes, not both')
  # No name: SingleTask names its learners ('learner_0', ...).
  cfg = pax_fiddle.Config(learners.Learner, loss_name=loss_name, optimizer=optimizer_cfg)
  if frozen:
    cfg.bprop_variable_exclusion = list(frozen)
  if trainable:
    cfg.bprop_variable_inclusion = list(trainable)
  return cfg


def constant_adam_learner(
  loss_name: str, learning_rate: float
) -> pax_fiddle.Config[learners.Learner]:
  """Adam at a constant rate without clipping: the example task's learner."""
  cfg = learner(loss_name, adam(learning_rate, constant_schedule(), None))
  cfg.name = 'learner'  # usable outside a SingleTask too (paxml asserts a name)
  return cfg
