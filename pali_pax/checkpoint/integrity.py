"""Checkpoint integrity: per-process SHA-256 manifests, verified split across processes.

Orbax 0.5.9 / tensorstore store each array as zstd-compressed zarr chunks with no
checksum: a flipped byte restores silently as wrong values and a deleted chunk as
zeros. So every step's item directory (`state/`) carries manifest parts:

    state/pali_pax_checksums.process_<i>.json   size + SHA-256 of the files process i wrote

Process i writes part i right after its own writes commit (`saving`), so at pod
scale no host reads another host's bytes: the data a step holds is hashed once,
spread over the hosts that wrote it. Before a restore the check is split the same
way: with P processes now, process p verifies the parts j with j % P == p (its
own part when the process count is unchanged), and process 0 also checks what
needs no data: paxml's metadata parses, every part is there, and no file is in
no part (or in two). `any_process` combines the verdicts, so a corrupt share
anywhere makes the step corrupt on every process.

A step saved before parts existed has one `pali_pax_checksums.json` (format v1),
read as the part of process 0 of 1; a step without any manifest (plain
`paxml.main`) gets structural checks only.
"""

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

PART = 'pali_pax_checksums.process_{}.json'
LEGACY = 'pali_pax_checksums.json'
FORMAT = 'pali_pax.checksums.v2'
LEGACY_FORMAT = 'pali_pax.checksums.v1'
_PART = re.compile(r'pali_pax_checksums\.process_(\d+)\.json')
_BLOCK = 1 << 20


def is_manifest(name: str) -> bool:
  """Whether a file name of the item dir is a manifest (part, legacy, or one being written)."""
  return name.startswith('pali_pax_checksums')


def sha256(path: epath.Path) -> str:
  h = hashlib.sha256()
  with path.open('rb') as f:
    while block := f.read(_BLOCK):
      h.update(block)
  return h.hexdigest()


def list_files(root: epath.PathLike) -> dict[str, epath.Path]:
  """Relative path -> path of every file under `root`, manifests excluded (gs:// too)."""
  out, pending = {}, [(epath.Path(root), '')]
  while pending:
    folder, prefix = pending.pop()
    for entry in folder.iterdir():
      rel = f'{prefix}{entry.name}'
      if entry.is_dir():
        pending.append((entry, f'{rel}/'))
      elif not (prefix == '' and is_manifest(entry.name)):
        out[rel] = entry
  return out


def hash_files(root: epath.PathLike, rels: Iterable[str]) -> dict[str, dict[str, Any]]:
  """{rel: {'size', 'sha256'}} of the files `rels` under `root` (read on this process)."""
  root = epath.Path(root)
  return {rel: {'size': (root / rel).stat().length, 'sha256': sha256(root / rel)} for rel in rels}


def write_part(
  item_dir: epath.PathLike, process: int, process_count: int, files: Mapping[str, Any]
) -> epath.Path:
  """Writes (atomically) process `process`'s manifest part into `item_dir`; returns its path."""
  item_dir = epath.Path(item_dir)
  target = item_dir / PART.format(process)
  tmp = item_dir / f'{target.name}.tmp'
  body = {
    'format': FORMAT,
    'process': process,
    'process_count': process_count,
    'files': dict(sorted(files.items())),
  }
  tmp.write_text(json.dumps(body, indent=0))
  tmp.replace(target)  # finalize rewrites part 0
  return target


def read_parts(item_dir: epath.Path) -> tuple[dict[int, dict[str, Any]], int | None, list[str]]:
  """({process: files}, process count at save, problems) of the manifests in `item_dir`."""
  parts, counts, problems = {}, set(), []
  for entry in item_dir.iterdir():
    m = _PART.fullmatch(entry.name)
    if not m and entry.name != LEGACY:
      continue
    want_format = FORMAT if m else LEGACY_FORMAT
    try:
      body = json.loads(entry.read_text())
      files = body['files']
      if body.get('format') != want_format or not isinstance(files, dict):
        raise ValueError(f'format is not {want_format}')
    except (OSError, ValueError, KeyError, TypeError) as e:
      problems.append(f'{entry}: unreadable checksums ({e})')
      continue
    parts[int(m.group(1)) if m else 0] = files
    counts.add(int(body.get('process_count', 1)))
  if len(counts) > 1:
    problems.append(f'{item_dir}: manifest parts disagree on the process count ({sorted(counts)})')
  return parts, (max(counts) if counts else None), problems


@dataclasses.dataclass
class Verification:
  """What one process found in its share of a step."""

  problems: list[str]
  checksummed: bool  # the step has manifests (else: structural checks only)
  files_read: list[str]  # item-relative paths this process hashed


def _verify_files(state: epath.Path, entries: Mapping[str, Any]) -> tuple[list[str], list[str]]:
  problems, read = [], []
  for rel, want in sorted(entries.items()):
    path = state / rel
    try:
      size = path.stat().length
    except OSError:
      problems.append(f'{path}: missing')
      continue
    if size != want['size']:
      problems.append(f'{path}: {size} bytes, {want["size"]} were written')
      continue
    read.append(rel)
    if sha256(path) != want['sha256']:
      problems.append(f'{path}: checksum mismatch (contents changed since the save)')
  return problems, read


def _verify_listing(state: epath.Path, parts: dict[int, dict], count: int | None) -> list[str]:
  """Process 0's data-free checks: every part there, every file in exactly one part."""
  problems = [
    f'{state / PART.format(i)}: missing (the part of process {i})'
    for i in range(count or 0)
    if i not in parts
  ]
  owner: dict[str, int] = {}
  for i, files in sorted(parts.items()):
    for rel in files:
      if rel in owner:
        problems.append(f'{state / rel}: in the parts of processes {owner[rel]} and {i}')
      owner[rel] = i
  problems += [
    f'{state / rel}: not in the checksums' for rel in sorted(set(list_files(state)) - set(owner))
  ]
  return problems


def _verify_structure(state: epath.Path) -> list[str]:
  """What can be checked without checksums: every array dir has a readable .zarray."""
  problems, arrays = [], 0
  for entry in state.iterdir():
    if entry.is_dir():
      arrays += 1
      try:
        json.loads((entry / '.zarray').read_text())
      except (OSError, ValueError) as e:
        problems.append(f'{entry / ".zarray"}: unreadable array metadata ({e})')
  if not arrays:
    problems.append(f'{state}: holds no arrays')
  return problems


def verify_share(step_dir: epath.PathLike, index: int = 0, count: int = 1) -> Verification:
  """Checks process `index` of `count`'s share of one step directory (see the module doc)."""
  step_dir = epath.Path(step_dir)
  if not step_dir.is_dir():
    return Verification([f'{step_dir}: not a directory'], False, [])
  problems = []
  if index == 0:
    meta = step_dir / 'metadata' / 'metadata'
    try:
      json.loads(meta.read_text())
    except (OSError, ValueError) as e:
      problems.append(f'{meta}: missing or unreadable paxml metadata ({type(e).__name__}: {e})')
  state = step_dir / 'state'
  if not state.is_dir():
    return Verification([*problems, f'{state}: missing (no arrays)'], False, [])
  parts, saved_count, part_problems = read_parts(state)
  if not parts and not part_problems:
    return Verification(problems + (_verify_structure(state) if index == 0 else []), False, [])
  problems += part_problems if index == 0 else []
  if index == 0:
    problems += _verify_listing(state, parts, saved_count)
  read = []
  for part in sorted(parts):
    if part % count == index:
      found, files = _verify_files(state, parts[part])
      problems += found
      read += files
  logging.info(
    'pali_pax integrity: process %d of %d read %d files of %s', index, count, len(read), step_dir
  )
  # Which files (long at pod scale: debug only; the multi-process test reads it).
  logging.debug(
    'pali_pax integrity: process %d of %d files of %s: %s', index, count, step_dir, json.dumps(read)
  )
  return Verification(problems, True, read)


def verify_step(step_dir: epath.PathLike) -> tuple[list[str], bool]:
  """(problems, checksummed) of one step, all of it checked here (one process)."""
  v = verify_share(step_dir)
  return v.problems, v.checksummed


def any_process(flag: bool) -> bool:
  """Whether `flag` is true on any process of the JAX job (one small all-gather)."""
  if jax.process_count() == 1:
    return flag
  gathered = multihost_utils.process_allgather(np.array([int(flag)], np.int32))
  return bool(np.any(gathered))


def verify_here(step_dir: epath.PathLike) -> tuple[list[str], bool]:
  """(this process's problems, corrupt on any process) of a step, the check split by process.

  Every process of the job must call it for the same step (it ends in a collective).
  """
  v = verify_share(step_dir, jax.process_index(), jax.process_count())
  return v.problems, any_process(bool(v.problems))
