"""The plain learner of the example task and the benchmarks: praxis Adam at a constant rate."""

from paxml import learners
from praxis import optimizers, pax_fiddle, schedules


def constant_adam_learner(
  loss_name: str, learning_rate: float
) -> pax_fiddle.Config[learners.Learner]:
  """paxml Learner minimising the model metric `loss_name` with praxis Adam.

  Constant learning rate, praxis' default clipping (none); the experiments use
  `PaliExperiment.optimizer_config` (warm-up, decay, clipping) instead.
  """
  return pax_fiddle.Config(
    learners.Learner,
    name='learner',
    loss_name=loss_name,
    optimizer=pax_fiddle.Config(
      optimizers.Adam,
      learning_rate=learning_rate,
      lr_schedule=pax_fiddle.Config(schedules.Constant),
    ),
  )
