"""Memory plan at the paper's scale: PaLI-17B / 3B train steps compiled abstractly.

A child process with `--xla_force_host_platform_device_count=N` emulates N
CPU devices; a paxml SingleTask (`task_config`: the PaliModel of `pali_config`,
Megatron-style sharding from `sharding.shard_pali`, a learner with factored Adafactor
and, when the ViT is frozen, no gradient or optimizer state for it; all from
`fiddle_configs.learner`) is built and paxml's `train_step_single_learner` is jitted with the
partition specs paxml derives for the TrainState, then lowered and compiled
from `jax.ShapeDtypeStruct`s: nothing is allocated. `compiled.memory_analysis()`
of an SPMD program gives the buffers of *one* device.

Mesh [replica, data, mdl] = [1, N/4, 4]: 4-way model partitioning as PaLI-17B
used, and the paper's batch per chip (4096 examples / 1024 chips = 4, i.e. 16
examples per data shard of 4 model-parallel chips). Without fsdp every
per-device buffer depends only on the model-axis size and the examples per data
shard, not on the data-axis size, so the figure is that of the paper's
[1, 256, 4] mesh (up to collective scratch); with fsdp see `fsdp_extrapolation`.

    python -m benchmarks.memory_plan --size 17b --image-size 224 --devices 8
"""

import argparse
import functools
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from paxml import tasks_lib, trainer_lib
from praxis import base_layer, pax_fiddle

from benchmarks import subproc
from benchmarks.timing import progress
from pali_pax.core import batch as batch_lib
from pali_pax.core import params as params_lib
from pali_pax.fiddle_configs import learner, lora, pali, sharding

TPU_V4_HBM = 32 * 2**30


def task_config(
  size: str,
  image_size: int,
  mesh_shape: tuple[int, int, int],
  freeze_vit: bool,
  mt5_scan: bool = True,
  fsdp: bool = False,
  shard_residual: bool = False,
  trainable: str | None = None,
  lora_rank: int = 8,
  lora_alpha: float = 16.0,
) -> pax_fiddle.Config[tasks_lib.SingleTask]:
  """SingleTask as PaLI's experiments train it: sharded PaliModel + Adafactor learner.

  What trains is an experiment's TRAINABLE preset (`learner.trainable_rules`;
  None: 'no_vit' if `freeze_vit` else 'all'); 'lora' rewrites the model with the
  experiments' LoRA adapters (`fiddle_configs.lora.apply_lora`, default targets).

  `learner.adafactor` (the experiments' optimizer: factored second moments, no
  first moment, update clipping 1.0) at a constant learning rate (the schedule
  does not change memory). With a frozen
  ViT the learner excludes it: no gradient, no optimizer state. The ViT is
  scanned (its config default) and so, with `mt5_scan`, are the mT5 stacks:
  one compiled block per stack keeps the CPU compile of a 48-layer XXL in
  minutes, and the scan's remat (save nothing but each block's input) is what
  a TPU run of this size would use too.
  """
  trainable = trainable or ('no_vit' if freeze_vit else 'all')
  task_p = pax_fiddle.Config(tasks_lib.SingleTask, name='pali')
  model_p = pali.pali_config(
    size, image_size=image_size, freeze_vit=not learner.trains_vit(trainable)
  )
  if trainable == 'lora':
    lora.apply_lora(model_p, lora_rank, lora_alpha)
  model_p.mt5_tpl.encoder_tpl.scan = mt5_scan
  model_p.mt5_tpl.decoder_tpl.scan = mt5_scan
  # fsdp: weights (and so gradients and optimizer state) also split over 'data'.
  task_p.model = sharding.shard_pali(model_p, mesh_shape, fsdp=fsdp)
  if shard_residual:
    # The residual stream [B, T, D] (what a scanned stack saves per layer for
    # the backward pass) split over 'mdl' too, instead of replicated on it.
    bld = [sharding.BATCH_AXES, None, sharding.MDL_AXIS]
    task_p.model.vit_tpl.activation_split_dims_mapping.bld = bld
    for stack in (task_p.model.mt5_tpl.encoder_tpl, task_p.model.mt5_tpl.decoder_tpl):
      stack.activation_split_dims_mapping.bld = bld
  optimizer = learner.adafactor(1e-3, learner.constant_schedule())
  inclusion, exclusion = learner.trainable_rules(trainable)
  task_p.train.learner = learner.learner(
    'total_loss', optimizer, frozen=exclusion, trainable=inclusion
  )
  return task_p


def _per_device(tree: Any, spec_tree: Any, mesh_shape: tuple[int, int, int]) -> int:
  """Bytes of one device's shards of `tree` (analytic, from the partition specs)."""
  sizes = dict(zip(sharding.MESH_AXIS_NAMES, mesh_shape, strict=True))
  specs = jax.tree_util.tree_leaves(spec_tree, is_leaf=lambda x: isinstance(x, PartitionSpec))
  total = 0
  for x, s in zip(jax.tree_util.tree_leaves(tree), specs, strict=True):
    split = 1
    for axes in s:
      for ax in axes if isinstance(axes, tuple) else (axes,):
        if ax is not None:
          split *= sizes[ax]
    total += math.prod(x.shape) * jnp.dtype(x.dtype).itemsize // split
  return total


def train_state(
  task_p: pax_fiddle.Config[tasks_lib.SingleTask],
  batch: Any,
  mesh_shape: tuple[int, int, int],
) -> tuple[Any, Any, dict[str, int]]:
  """(task, paxml TrainState metadata, {n_params, params_per_device, opt_state_per_device}).

  Shapes only (`jax.eval_shape` inside paxml): no device, no allocation, no compile.
  """
  task = base_layer.instantiate(task_p)
  meta = trainer_lib.create_train_state_metadata(task, batch)
  shapes, specs = meta.padded_global_shapes, meta.partition_specs
  sizes = dict(
    n_params=params_lib.count(shapes.mdl_vars),
    params_per_device=_per_device(shapes.mdl_vars, specs.mdl_vars, mesh_shape),
    opt_state_per_device=_per_device(shapes.opt_states, specs.opt_states, mesh_shape),
  )
  return task, meta, sizes


def plan_task(
  size: str,
  image_size: int,
  mesh_shape: tuple[int, int, int],
  freeze_vit: bool = True,
  param_dtype: str = 'float32',
  fprop_dtype: str = 'bfloat16',
  mt5_scan: bool = True,
  fsdp: bool = False,
  shard_residual: bool = False,
  trainable: str | None = None,
) -> pax_fiddle.Config[tasks_lib.SingleTask]:
  """`task_config` with the plan's dtypes and no summaries: the task `plan` compiles.

  `trainable`: a TRAINABLE preset ('all', 'no_vit', 'lora', ...); None: from `freeze_vit`.
  """
  task_p = task_config(
    size, image_size, mesh_shape, freeze_vit, mt5_scan, fsdp, shard_residual, trainable
  )
  task_p.model.dtype = getattr(jnp, param_dtype)
  task_p.model.fprop_dtype = getattr(jnp, fprop_dtype)
  task_p.summary_verbosity = 0
  return task_p


def plan(
  size: str,
  image_size: int,
  devices: int,
  mdl: int = 4,
  per_device_batch: int = 4,
  input_len: int = 64,
  target_len: int = 64,
  freeze_vit: bool = True,
  param_dtype: str = 'float32',
  fprop_dtype: str = 'bfloat16',
  mt5_scan: bool = True,
  fsdp: bool = False,
  shard_residual: bool = False,
  trainable: str | None = None,
  mesh_axes: tuple[int, int, int] | None = None,
  batch: int | None = None,
) -> dict[str, Any]:
  """Child side: compile the train step abstractly; returns per-device bytes.

  Mesh [replica, data, mdl]: `mesh_axes` if given (its product must be `devices`), else
  [1, devices / mdl, mdl]. Global batch (examples per step): `batch` if given, else
  `per_device_batch * devices`; it must divide over replica x data.
  `trainable`: the TRAINABLE preset compiled ('lora': the LoRA program itself).
  """
  assert jax.device_count() == devices, (jax.device_count(), devices)
  mesh_shape = tuple(mesh_axes) if mesh_axes else (1, devices // mdl, mdl)
  assert math.prod(mesh_shape) == devices, (mesh_shape, devices)
  b = batch if batch is not None else per_device_batch * devices
  assert b % (mesh_shape[0] * mesh_shape[1]) == 0, (b, mesh_shape)
  task_p = plan_task(
    size,
    image_size,
    mesh_shape,
    freeze_vit,
    param_dtype,
    fprop_dtype,
    mt5_scan,
    fsdp,
    shard_residual,
    trainable,
  )
  batch = batch_lib.batch_specs(image_size, b, input_len, target_len)
  t0 = time.perf_counter()
  task, meta, state_sizes = train_state(task_p, batch, mesh_shape)
  mesh = jax.sharding.Mesh(np.array(jax.devices()).reshape(mesh_shape), sharding.MESH_AXIS_NAMES)
  state_sh = jax.tree_util.tree_map(lambda s: NamedSharding(mesh, s), meta.partition_specs)
  batch_sh = jax.tree_util.tree_map(
    lambda x: NamedSharding(mesh, PartitionSpec(sharding.BATCH_AXES, *([None] * (x.ndim - 1)))),
    batch,
  )
  key_sh = NamedSharding(mesh, PartitionSpec())
  tag = f'{size} {image_size}px {trainable or ""} mesh {list(mesh_shape)} batch {b}'
  step = jax.jit(
    functools.partial(
      trainer_lib.train_step_single_learner,
      task,
      fprop_dtype=task.model.fprop_dtype,
      var_weight_hparams=meta.var_weight_hparams,
    ),
    in_shardings=(state_sh, key_sh, batch_sh),
    out_shardings=(state_sh, None),
    donate_argnums=(0,),
  )
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  with mesh:
    progress(f'memory plan {tag}: lowering')
    lowered = step.lower(meta.padded_global_shapes, key, batch)
    progress(f'memory plan {tag}: compiling')
    compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  return dict(
    size=size,
    image_size=image_size,
    devices=devices,
    mesh=list(mesh_shape),
    per_device_batch=b // devices if b % devices == 0 else b / devices,
    batch=b,
    input_len=input_len,
    target_len=target_len,
    freeze_vit=freeze_vit,
    trainable=trainable or ('no_vit' if freeze_vit else 'all'),
    param_dtype=param_dtype,
    fprop_dtype=fprop_dtype,
    mt5_scan=mt5_scan,
    fsdp=fsdp,
    shard_residual=shard_residual,
    **state_sizes,
    argument=int(mem.argument_size_in_bytes),
    output=int(mem.output_size_in_bytes),
    alias=int(mem.alias_size_in_bytes),
    temp=int(mem.temp_size_in_bytes),
    # Donated state aliases its output, so live memory = arguments + temps
    # + the outputs that are not aliased.
    peak=int(
      mem.argument_size_in_bytes
      + mem.temp_size_in_bytes
      + mem.output_size_in_bytes
      - mem.alias_size_in_bytes
    ),
    compile_s=compile_s,
  )


def parse_point(text: str, default_devices: int) -> dict[str, Any]:
  """'17b:588', '17b:588:fsdp@16' or '17b:588:fsdp:res@16' -> point dict.

  Keys: size, image_size, fsdp (weights also split over 'data'),
  shard_residual ('res': the [B, T, D] residual stream split over 'mdl'),
  devices.
  """
  spec, _, devices = text.partition('@')
  parts = spec.split(':')
  return dict(
    size=parts[0],
    image_size=int(parts[1]),
    fsdp='fsdp' in parts[2:],
    shard_residual='res' in parts[2:],
    devices=int(devices) if devices else default_devices,
  )


def bench_memory_plan(
  points: list[str], default_devices: int, timeout: float
) -> list[dict[str, Any]]:
  """One child process per point (see `parse_point`); failed / timed-out points are skipped."""
  out = []
  for text in points:
    pt = parse_point(text, default_devices)
    n = pt['devices']
    progress(f'memory plan {text} on {n} emulated devices (subprocess)')
    args = ['--size', pt['size'], '--image-size', str(pt['image_size']), '--devices', str(n)]
    args += ['--fsdp', str(pt['fsdp']), '--shard-residual', str(pt['shard_residual'])]
    rec = subproc.run_child('benchmarks.memory_plan', args, timeout=timeout, devices=n)
    if rec is not None:
      rec['fits_tpu_v4'] = rec['peak'] <= TPU_V4_HBM
      out.append(rec)
  return out


def fsdp_extrapolation(recs: list[dict[str, Any]], data: int = 256) -> list[dict[str, Any]]:
  """Per-device live bytes at a data-axis size `data` from two fsdp points.

  With weights sharded over data, live(d) = A + W / d: A (activations, one
  layer's gathered weights) does not depend on d, W (weights, gradients,
  optimizer state and their temporaries) splits d ways. Two compiled points
  with different d fix A and W. Returns [{size, image_size, A, W, live}] for
  every (size, image_size) with two such points.
  """
  groups: dict[tuple[str, int, bool], dict[int, int]] = {}
  for r in recs:
    if r.get('fsdp'):
      key = (r['size'], r['image_size'], bool(r.get('shard_residual')))
      groups.setdefault(key, {})[r['mesh'][1]] = r['peak']
  out = []
  for (size, res, sr), pts in sorted(groups.items()):
    if len(pts) < 2:
      continue
    (d1, l1), (d2, l2) = sorted(pts.items())[:2]
    w = (l1 - l2) / (1 / d1 - 1 / d2)
    a = l1 - w / d1
    out.append(
      dict(size=size, image_size=res, shard_residual=sr, A=a, W=w, data=data, live=a + w / data)
    )
  return out


def main() -> None:
  p = argparse.ArgumentParser(description='abstract compile of one PaLI train step (child)')
  p.add_argument('--size', default='17b')
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--devices', type=int, default=8)
  p.add_argument('--mdl', type=int, default=4)
  p.add_argument('--per-device-batch', type=int, default=4)
  p.add_argument('--input-len', type=int, default=64)
  p.add_argument('--target-len', type=int, default=64)
  p.add_argument('--freeze-vit', default='auto', help="'auto': frozen at 224 px, trained above")
  p.add_argument('--param-dtype', default='float32')
  p.add_argument('--fprop-dtype', default='bfloat16')
  p.add_argument('--mt5-scan', default='True')
  p.add_argument('--fsdp', default='False', help='also shard weights over the data axis')
  p.add_argument('--shard-residual', default='False', help="split [B, T, D] over 'mdl' too")
  p.add_argument('--trainable', default=None, help='TRAINABLE preset; default: from --freeze-vit')
  p.add_argument('--mesh', default=None, help="'R,D,M' (product = --devices); default 1,N/mdl,mdl")
  p.add_argument('--batch', type=int, default=None, help='global batch; default per-device x N')
  a = p.parse_args()
  freeze = a.image_size <= 224 if a.freeze_vit == 'auto' else a.freeze_vit == 'True'
  subproc.emit(
    plan(
      a.size,
      a.image_size,
      a.devices,
      a.mdl,
      a.per_device_batch,
      a.input_len,
      a.target_len,
      freeze,
      a.param_dtype,
      a.fprop_dtype,
      a.mt5_scan == 'True',
      a.fsdp == 'True',
      a.shard_residual == 'True',
      a.trainable,
      tuple(int(x) for x in a.mesh.split(',')) if a.mesh else None,
      a.batch,
    )
  )


if __name__ == '__main__':
  main()
