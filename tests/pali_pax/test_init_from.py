"""INIT_FROM's checks that need no checkpoint: a missing folder, the posemb shape rules.

The initialisation itself (a 32 px checkpoint into the 48 px experiment, through paxml's
own SPMD init) is in test_init_from_slow.py.
"""

import pytest

from pali_pax.checkpoint import reading
from pali_pax.core.errors import CheckpointMismatchError
from pali_pax.fiddle_configs import task


def test_missing_checkpoint_dir_is_an_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    reading.find_step(str(tmp_path / 'nope'))
  with pytest.raises(FileNotFoundError, match='no checkpoint_<step>'):
    reading.find_step(str(tmp_path))


@pytest.mark.parametrize(
  ('saved', 'model', 'expected'),
  [
    ({task.POSEMB: (1, 16, 8), 'params/a': (3,)}, {task.POSEMB: (1, 16, 8)}, False),
    ({task.POSEMB: (1, 16, 8)}, {task.POSEMB: (1, 36, 8)}, True),
    ({task.POSEMB: (1, 16, 8)}, {task.POSEMB: (1, 36, 4)}, 'pos_embedding'),
    ({task.POSEMB: (1, 16, 8)}, {task.POSEMB: (1, 30, 8)}, 'pos_embedding'),
    ({'params/a': (3,)}, {'params/a': (4,)}, "'params/a' has shape \\[3\\]"),
    ({'params/a': (3,)}, {'params/a': (3,), 'params/b': (1,)}, "no variable 'params/b'"),
  ],
)
def test_posemb_needs_resample(saved, model, expected):
  if isinstance(expected, bool):
    assert task.posemb_needs_resample(saved, model, 'ckpt') is expected
  else:
    with pytest.raises(CheckpointMismatchError, match=expected):
      task.posemb_needs_resample(saved, model, 'ckpt')
