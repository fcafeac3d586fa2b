"""Our train step, built and run the way paxml runs it.

A paxml `tasks_lib.SingleTask` holds the PaliModel and a praxis Adam learner
(constant learning rate, praxis' default clipping); `trainer_lib.
initialize_model_state` makes the TrainState and `trainer_lib.
train_step_single_learner` is the step function (forward, backward, optimizer
update), jitted with the state donated, as paxml's SPMD partitioner jits it on
a single-device mesh. Nothing here re-implements the training math.
"""

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from paxml import tasks_lib, trainer_lib
from praxis import base_layer, pax_fiddle, py_utils

from benchmarks import configs, flops
from benchmarks.model_step import random_batch
from benchmarks.timing import Timing, progress, time_calls
from pali_pax.fiddle_configs import learner

NestedMap = py_utils.NestedMap


def task_config(
  spec: configs.BenchSpec, opts: configs.ModelOptions, learning_rate: float = 1e-4
) -> pax_fiddle.Config[tasks_lib.SingleTask]:
  """SingleTask with the model of (spec, opts) and a praxis Adam learner."""
  task_p = pax_fiddle.Config(tasks_lib.SingleTask, name='bench')
  task_p.model = configs.model_config(spec, opts)
  task_p.train.learner = learner.constant_adam_learner('total_loss', learning_rate)
  # Summaries cost host work every step and paxml's trainer skips them on
  # most steps; the benchmark never writes them.
  task_p.summary_verbosity = 0
  return task_p


@dataclasses.dataclass
class TrainStep:
  """A ready-to-run paxml train step.

  Attributes:
    step: jitted (states, key, batch) -> (states, StepFnOutput); states donated.
    states: the current TrainState (replaced after every call of `run`).
    batch: the device batch.
    compiled: the AOT-compiled executable (cost and memory analysis).
    compile_s: seconds spent lowering and compiling.
    n_params: trainable parameter count.
  """

  step: Any
  states: Any
  batch: NestedMap
  compiled: Any
  compile_s: float
  n_params: int
  key: Any = None

  def run(self) -> Any:
    """One training step; returns the loss (a jax scalar)."""
    self.states, out = self.compiled(self.states, self.key, self.batch)
    return out.loss


def build_train_step(spec: configs.BenchSpec, opts: configs.ModelOptions) -> TrainStep:
  """Instantiates the task, initialises its state and compiles the step."""
  task = base_layer.instantiate(task_config(spec, opts))
  batch = jax.tree_util.tree_map(jnp.asarray, random_batch(spec))
  shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
  key = jax.random.PRNGKey(0)
  with base_layer.JaxContext.new_context(hparams=base_layer.JaxContext.HParams(do_eval=False)):
    wps = task.model.abstract_init_with_metadata(shapes)
  states, _ = trainer_lib.initialize_model_state(
    task, key, shapes, do_init_checkpoint_rules=False, var_weight_hparams=wps
  )
  fprop_dtype = task.model.fprop_dtype
  fn = functools.partial(
    trainer_lib.train_step_single_learner, task, fprop_dtype=fprop_dtype, var_weight_hparams=wps
  )
  step = jax.jit(fn, donate_argnums=(0,))
  t0 = time.perf_counter()
  compiled = step.lower(states, key, batch).compile()
  compile_s = time.perf_counter() - t0
  n_params = int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(states.mdl_vars)))
  return TrainStep(step, states, batch, compiled, compile_s, n_params, key)


def cost_flops(compiled: Any) -> float | None:
  """XLA's own FLOP count of a compiled program (None when unavailable).

  XLA's HloCostAnalysis counts a while-loop body once, so programs with scans
  (praxis Repeat) under-report; see `flops.py` for the analytic count.
  """
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001  (backends without cost analysis)
    return None
  if isinstance(cost, list):
    cost = cost[0] if cost else None
  if not cost or 'flops' not in cost:
    return None
  return float(cost['flops'])


def memory_bytes(compiled: Any) -> dict[str, int] | None:
  """XLA's buffer assignment: argument/output/temp/alias bytes (None if absent)."""
  try:
    m = compiled.memory_analysis()
  except Exception:  # noqa: BLE001
    return None
  if m is None:
    return None
  keys = ('argument', 'output', 'temp', 'alias', 'generated_code')
  return {k: int(getattr(m, f'{k}_size_in_bytes', 0)) for k in keys}


def record(
  spec: configs.BenchSpec, opts: configs.ModelOptions, ts: TrainStep, timing: Timing
) -> dict[str, Any]:
  """JSON-able record of a measured train step.

  Keys: spec, options, label, step (Timing), examples_per_s, compile_s,
  n_params, flops_analytic (model FLOPs per step, fwd+bwd), flops_xla (XLA's
  cost analysis), memory (XLA buffer bytes), loss (after the timed steps).
  """
  return dict(
    spec=dataclasses.asdict(spec),
    options=dataclasses.asdict(opts),
    label=opts.label(),
    step=timing.to_json(),
    examples_per_s=spec.batch / timing.median,
    compile_s=ts.compile_s,
    n_params=ts.n_params,
    flops_analytic=flops.train_flops(spec),
    flops_xla=cost_flops(ts.compiled),
    memory=memory_bytes(ts.compiled),
    loss=float(ts.run()),
  )


def bench_train(
  spec: configs.BenchSpec, opts: configs.ModelOptions, repeats: int, warmup: int = 1
) -> dict[str, Any]:
  """Builds and measures our train step of `spec` alone; returns `record(...)`."""
  label = f'ours {spec.name} [{opts.label()}]'
  progress(f'{label}: compiling')
  ts = build_train_step(spec, opts)
  progress(f'{label}: compiled in {ts.compile_s:.1f} s')
  timing = time_calls(ts.run, repeats, warmup, label=label)
  return record(spec, opts, ts, timing)


def timing_of(record: dict[str, Any]) -> Timing:
  """The Timing stored in a record by `bench_train` (or any 'step' key)."""
  return Timing(**record['step'])
