"""Reading a paxml input to its end, as a decode program does (eval / decode input tests)."""

from typing import Any

import tensorflow as tf


def drain(inp: Any) -> list:
  """Every batch `inp.get_next()` gives until the split ends."""
  batches = []
  while True:
    try:
      batches.append(inp.get_next())
    except (StopIteration, tf.errors.OutOfRangeError):
      return batches
