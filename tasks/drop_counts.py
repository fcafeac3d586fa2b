"""Counters of examples the input pipelines drop, per counter name and reason.

tf.data pipelines drop examples they cannot use (an undecodable, empty or too
large image; text that is not valid UTF-8) instead of failing a whole training
run. Nothing is dropped silently: each drop adds 1 to a tf.Variable counter
keyed by (name, reason), where the name is usually the seqio task and the
reason one of `REASONS`, and is logged (absl warning) when it happens.

    increment(name, reason, flag)   inside a tf.data map: +1 where `flag` is True
    count(name=None, reason=None)   total so far, over every name / reason left None
    counts()                        {(name, reason): n} of every counter
    log_counts()                    logs them (warning when non-zero) and returns counts()
    reset()                         every counter back to 0
"""

import tensorflow as tf
from absl import logging

from pali_pax.core import errors

# Why an example was dropped (what the logs and counters say).
REASONS = {
  'empty': 'the image file is empty (0 bytes)',
  'too_large': 'the image header declares more pixels than the cap (not decoded)',
  'undecodable': 'the image cannot be decoded (corrupt, truncated or unsupported)',
  'invalid_utf8': 'a text field is not valid UTF-8',
}

_COUNTERS: dict[tuple[str, str], tf.Variable] = {}


def counter(name: str, reason: str) -> tf.Variable:
  """The int64 counter of (name, reason), created on first use."""
  if reason not in REASONS:
    raise errors.ConfigError(f'unknown drop reason {reason!r}; known: {sorted(REASONS)}')
  key = (name, reason)
  if key not in _COUNTERS:
    with tf.init_scope():  # a variable created eagerly even if first asked for inside a trace
      _COUNTERS[key] = tf.Variable(
        0, dtype=tf.int64, trainable=False, name=f'dropped_{name}_{reason}'
      )
  return _COUNTERS[key]


def increment(name: str, reason: str, flag: tf.Tensor) -> tf.Tensor:
  """Graph op: adds 1 to (name, reason) and logs a warning where the bool scalar `flag` is True."""
  var = counter(name, reason)
  var.assign_add(tf.cast(flag, tf.int64))

  def warn() -> tf.Tensor:
    tf.print(
      f'pali_pax: dropped an example of {name}: {REASONS[reason]} ({reason})',
      output_stream=logging.warning,
      end='',
    )
    return tf.constant(0)

  return tf.cond(flag, warn, lambda: tf.constant(0))


def count(name: str | None = None, reason: str | None = None) -> int:
  """Examples dropped so far, summed over every name / reason left None."""
  return sum(
    int(v.numpy())
    for (n, r), v in _COUNTERS.items()
    if (name is None or n == name) and (reason is None or r == reason)
  )


def counts() -> dict[tuple[str, str], int]:
  """{(name, reason): examples dropped} of every counter created so far."""
  return {k: int(v.numpy()) for k, v in sorted(_COUNTERS.items())}


def log_counts() -> dict[tuple[str, str], int]:
  """Logs (absl; warning when non-zero) and returns every counter."""
  out = counts()
  for (name, reason), n in out.items():
    log = logging.warning if n else logging.info
    log('pali_pax: %d example(s) of %s dropped: %s (%s)', n, name, REASONS[reason], reason)
  return out


def reset() -> None:
  """Sets every counter back to 0."""
  for v in _COUNTERS.values():
    v.assign(0)
