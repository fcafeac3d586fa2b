"""Saving with checksums: each process hashes the files it wrote, into its own manifest part.

`ChecksummedPaxCheckpointHandler` is paxml's `PaxCheckpointHandler` plus:

- `async_save` (every process): orbax writes a `jax.Array` as one zarr chunk per
  shard, each shard by the process holding its replica 0; the chunk's file name
  is the shard's position in the chunk grid. From the arrays' shardings the
  handler knows which chunk files this process writes, and adds a commit future
  that, once this process's writes are committed, hashes exactly those files and
  writes `state/pali_pax_checksums.process_<i>.json` (`integrity.write_part`).
  Orbax waits on that future before its cross-process barrier.
- params the job leaves out (a LoRA job's frozen base, `frozen`): masked before
  the save (so neither written nor checksummed), and on restore read from the
  job's base step, verified intact first.
- `finalize` (primary process, after the barrier, before the step directory is
  renamed into place): the files no process claimed, which the primary wrote
  (`.zarray` headers, sharding metadata, host-local numpy values), are hashed
  into part 0. A step that is visible at all has all its parts.

`install()` makes paxml's checkpointers (the train loop and
`checkpoints.save_checkpoint`) use the handler.
"""

from typing import Any

import jax
import numpy as np
from absl import logging
from etils import epath
from paxml import checkpoint_creators, checkpoints, train_states

from pali_pax.checkpoint import frozen, integrity


def _chunk_key(index: tuple[slice, ...], chunk: tuple[int, ...]) -> str:
  """zarr v2 key ('.'-separated chunk grid position) of the chunk starting at `index`."""
  if not chunk:
    return '0'
  return '.'.join(str((s.start or 0) // c) for s, c in zip(index, chunk, strict=True))


def _written_here(value: Any, name: str, replica_id: int = 0) -> list[str]:
  """Item-relative chunk files of array `name` that this process writes.

  Orbax's ArrayHandler writes the shards of replica 0 (its default `replica_id`),
  one zarr chunk per shard (`chunks` = the shard shape).
  """
  if not isinstance(value, jax.Array):
    return []  # numpy / scalars: the primary writes them (claimed in finalize)
  chunk = tuple(int(c) for c in np.maximum(1, value.sharding.shard_shape(value.shape)))
  return sorted(
    {
      f'{name}/{_chunk_key(shard.index, chunk)}'
      for shard in value.addressable_shards
      if shard.replica_id == replica_id
    }
  )


class _ManifestFuture:
  """A commit future: after this process's writes commit, hashes its files into its part."""

  def __init__(self, before: list[Any], item_dir: epath.Path, files: list[str]):
    self._before, self._item_dir, self._files, self._done = before, item_dir, files, False

  def result(self, timeout: int | None = None) -> None:
    if self._done:
      return
    for f in self._before:
      f.result()
    index, count = jax.process_index(), jax.process_count()
    hashed = integrity.hash_files(self._item_dir, self._files)
    integrity.write_part(self._item_dir, index, count, hashed)
    self._done = True
    logging.info(
      'pali_pax: process %d hashed the %d files it wrote in %s', index, len(hashed), self._item_dir
    )


class ChecksummedPaxCheckpointHandler(checkpoints.PaxCheckpointHandler):
  """paxml's handler; every process checksums the files it wrote (see the module doc)."""

  _written: dict[str, list[str]] | None = None

  def _get_param_infos(self, item: Any, directory: epath.Path, save_args: Any, *args: Any) -> Any:
    infos, all_aggregated = super()._get_param_infos(item, directory, save_args, *args)
    values, treedef = jax.tree_util.tree_flatten(item)
    leaf_infos = treedef.flatten_up_to(infos)
    leaf_args = treedef.flatten_up_to(save_args)
    files: list[str] = []
    for value, info, arg in zip(values, leaf_infos, leaf_args, strict=True):
      if not getattr(arg, 'aggregate', False):
        files += _written_here(value, info.name)
    self._written = {**(self._written or {}), str(directory): files}
    return infos, all_aggregated

  async def async_save(
    self,
    directory: epath.Path,
    item: Any = None,
    save_args: Any = None,
    version: float | None = None,
  ) -> Any:
    base = frozen.of_item_dir(directory) if isinstance(item, train_states.TrainState) else None
    if base is not None:
      # Masked like the optimizer slots of frozen variables: paxml writes no file for them.
      item = frozen.without_frozen(item, frozen.frozen_mask(item.mdl_vars, base))
    futures = await super().async_save(directory, item, save_args=save_args, version=version)
    files = (self._written or {}).pop(str(directory), [])
    before = [f for f in jax.tree_util.tree_leaves(futures or []) if f is not None]
    return [*before, _ManifestFuture(before, epath.Path(directory), files)]

  def restore(
    self,
    directory: epath.Path,
    item: Any = None,
    specs: Any = None,
    mesh: jax.sharding.Mesh | None = None,
    version: float | None = None,
    transforms: Any = None,
  ) -> Any:
    """paxml's restore; params the job left out are read from its base step (`frozen`)."""
    directory = epath.Path(directory)
    base = frozen.of_item_dir(directory) if isinstance(item, train_states.TrainState) else None
    if base is None:
      return super().restore(directory, item, specs, mesh, version, transforms)
    mask = frozen.frozen_mask(item.mdl_vars, base)
    own = super().restore(
      directory,
      frozen.without_frozen(item, mask),
      None if specs is None else frozen.without_frozen(specs, mask),
      mesh,
      version,
      transforms,
    )
    base_dir = frozen.check_base(base, str(directory.parent))
    # self: a base that is itself such a job reads its own base in turn.
    from_base = self.restore(
      base_dir / 'state',
      frozen.only_frozen(item, mask),
      None if specs is None else frozen.only_frozen(specs, mask),
      mesh,
      version,
    )
    logging.info('pali_pax: frozen params of %s read from %s', directory.parent, base_dir)
    return frozen.merged(own, from_base, mask)

  def finalize(self, directory: epath.Path) -> None:
    super().finalize(directory)
    directory = epath.Path(directory)
    parts, count, problems = integrity.read_parts(directory)
    if problems:
      raise OSError(f'pali_pax: cannot finalize the checksums of {directory}: {problems}')
    claimed = {rel for files in parts.values() for rel in files}
    rest = sorted(set(integrity.list_files(directory)) - claimed)
    own = {**parts.get(0, {}), **integrity.hash_files(directory, rest)}
    integrity.write_part(directory, 0, count or jax.process_count(), own)
    logging.info('pali_pax: checksums of %s complete (%d parts)', directory, len(parts))


def install() -> None:
  """Makes paxml's checkpointers (train loop and `checkpoints.save_checkpoint`) checksum."""
  checkpoints.PaxCheckpointHandler = ChecksummedPaxCheckpointHandler
  checkpoint_creators.PaxCheckpointHandler = ChecksummedPaxCheckpointHandler
