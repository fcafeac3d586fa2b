"""Abstract parameter trees: shapes without allocation, and configs without a mesh."""

import copy
import math
from typing import Any

import fiddle as fdl
import jax
from fiddle import daglish
from praxis import base_layer, pax_fiddle

_MESH_FIELDS = ('ici_mesh_shape', 'dcn_mesh_shape', 'mesh_axis_names')


def unsharded(cfg: pax_fiddle.Config) -> pax_fiddle.Config:
  """A copy of `cfg` without a device mesh on any layer in it.

  The split annotations stay, but praxis ignores them when a layer has no
  `mesh_axis_names`: the copy runs on one device and traces without a mesh
  context (shapes never depend on the mesh). `cfg` itself is not changed.
  """
  cfg = copy.deepcopy(cfg)
  for value, _ in daglish.iterate(cfg):
    fn = fdl.get_callable(value) if isinstance(value, fdl.Buildable) else None
    if isinstance(fn, type) and issubclass(fn, base_layer.BaseLayer):
      for name in _MESH_FIELDS:
        setattr(value, name, None)
  return cfg


def abstract_params(
  cfg: pax_fiddle.Config[base_layer.BaseLayer] | base_layer.BaseLayer,
  *inputs: Any,
  method: str | None = None,
) -> dict:
  """Shapes of a layer's `params` collection (jax.ShapeDtypeStruct leaves), nothing allocated.

  The one helper for abstract parameter trees (counts, converters' strict checks).

  Args:
    cfg: a layer config, or an unbound layer.
    *inputs: example inputs of `method` (arrays or jax.ShapeDtypeStruct).
    method: name of the layer method `init` runs; default `__call__`.
  """
  # Shapes do not depend on the mesh; dropping it lets a pod-scale config trace on 1 CPU
  # without a mesh context.
  if isinstance(cfg, pax_fiddle.Config):
    layer = base_layer.instantiate(unsharded(cfg))
  else:
    layer = cfg.clone(ici_mesh_shape=None, dcn_mesh_shape=None, mesh_axis_names=None)

  def init(*args: Any) -> Any:
    with base_layer.JaxContext.new_context():
      return layer.init(jax.random.PRNGKey(0), *args, method=method)

  return jax.eval_shape(init, *inputs)[base_layer.PARAMS]


def count(tree: dict) -> int:
  return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))
