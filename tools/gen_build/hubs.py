"""Third-party packages: the pip hubs of WORKSPACE, their pins, and the //:<dist> wrappers.

WORKSPACE has one `pip_parse` hub per lock file. Packages of the core hub (`pip`) are
used as `requirement("dist")`; those of another hub (praxis/paxml, installed --no-deps,
and the bench extra) through a root wrapper `//:<dist>` that adds the core-hub packages
its Requires-Dist needs, since rules_python links a wheel's dependencies only within
its own hub.
"""

from __future__ import annotations

import importlib.metadata
import os
import re

from packaging.markers import Marker
from packaging.requirements import Requirement

CORE_HUB = 'pip'
# Import names that differ from the distribution name.
IMPORT_TO_DIST = {
  'absl': 'absl-py',
  'attr': 'attrs',
  'google.protobuf': 'protobuf',
  'importlinter': 'import-linter',
  'orbax': 'orbax-checkpoint',
  'PIL': 'pillow',
  'sklearn': 'scikit-learn',
  'tree': 'dm-tree',
  'xdist': 'pytest-xdist',
  'yaml': 'PyYAML',
}
# Requires-Dist names that the locks provide under another distribution name.
DIST_ALIASES = {'seqio_nightly': 'seqio', 'tfds_nightly': 'tensorflow_datasets'}


def normalize(name: str) -> str:
  return re.sub(r'[-_.]+', '_', name).lower()


class Hubs:
  """The pinned distributions of each hub, from WORKSPACE and its lock files."""

  def __init__(self, root: str) -> None:
    self.root = root
    with open(os.path.join(root, 'WORKSPACE')) as f:
      workspace = f.read()
    pattern = r'pip_parse\(\s*name = "(\w+)",.*?requirements_lock = "//(\w*):([\w.-]+)"'
    self.lock_files = {}  # hub -> (package, file)
    self.pins = {}  # normalized dist -> (hub, the lock's spelling)
    for hub, package, name in re.findall(pattern, workspace, re.S):
      self.lock_files[hub] = (package, name)
      with open(os.path.join(root, package, name)) as f:
        for line in f:
          m = re.match(r'([A-Za-z0-9._-]+)==', line)
          if m:
            self.pins.setdefault(normalize(m.group(1)), (hub, m.group(1)))
    self.wrapped: set[str] = set()  # other-hub dists used, by their lock spelling

  def label(self, module: str) -> str | None:
    """`@pip//<dist>` or `//:<dist>` (a wrapper) for an imported module; None: not pinned."""
    parts = module.split('.')
    dist = IMPORT_TO_DIST.get('.'.join(parts[:2])) or IMPORT_TO_DIST.get(parts[0]) or parts[0]
    hub, name = self.pins.get(normalize(dist), (None, None))
    if hub == CORE_HUB:
      return f'@{hub}//{name}'
    if hub:
      self.wrapped.add(name)
      return f'//:{name}'
    return None

  def wrapper_deps(self, name: str) -> list[str]:
    """The hub's requirement of `name` + the core-hub packages its hub closure requires."""
    hub = self.pins[normalize(name)][0]
    deps, todo, seen = {f'@{hub}//{name}'}, [name], set()
    while todo:
      dist = todo.pop()
      seen.add(normalize(dist))
      try:
        reqs = [Requirement(r) for r in importlib.metadata.requires(dist) or []]
      except importlib.metadata.PackageNotFoundError:
        return sorted(deps | set(self._kept(name)))  # not installed here
      for r in reqs:
        if r.marker and not Marker(str(r.marker)).evaluate({'extra': ''}):
          continue
        n = DIST_ALIASES.get(normalize(r.name), normalize(r.name))
        pin_hub, spelled = self.pins.get(n, (None, None))
        if pin_hub == CORE_HUB:
          deps.add(f'@{CORE_HUB}//{spelled}')
        elif pin_hub == hub and n not in seen:
          todo.append(spelled)
    return sorted(deps)

  def _kept(self, name: str) -> list[str]:
    """The wrapper's core-hub deps as the current //:BUILD has them."""
    path = os.path.join(self.root, 'BUILD')
    text = open(path).read() if os.path.exists(path) else ''
    m = re.search(rf'name = "{re.escape(name)}",\n\s*deps = \[(.*?)\]', text, re.S)
    return (
      [f'@{CORE_HUB}//{d}' for d in re.findall(r'\brequirement\("([^"]+)"\)', m.group(1))]
      if m
      else []
    )
