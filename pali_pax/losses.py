"""Token-level cross-entropy for teacher-forced targets (label smoothing, z-loss)."""

import jax
import jax.numpy as jnp
from praxis import py_utils, pytypes

JTensor = pytypes.JTensor
NestedMap = py_utils.NestedMap


@jax.custom_vjp
def nll_and_log_z(logits: JTensor, labels: JTensor) -> tuple[JTensor, JTensor]:
  """-log softmax(logits)[label] and logsumexp(logits), both [B, T], float32 logits [B, T, V].

  The gradient is written out (softmax times the summed cotangents, minus the
  one-hot): one elementwise pass over [B, T, V]. Autodiff of take_along_axis
  instead scatters into zeros and adds the logsumexp path, which XLA CPU runs
  in transposed layouts (the loss backward was the largest op of the demo's step).
  """
  return _nll_and_log_z(logits, labels)[0]


def _nll_and_log_z(logits: JTensor, labels: JTensor) -> tuple[tuple[JTensor, JTensor], tuple]:
  log_z = jax.nn.logsumexp(logits, axis=-1)
  picked = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
  return (log_z - picked, log_z), (logits, labels, log_z)


def _nll_and_log_z_bwd(res: tuple, g: tuple[JTensor, JTensor]) -> tuple[JTensor, None]:
  logits, labels, log_z = res
  g_nll, g_log_z = g
  softmax = jnp.exp(logits - log_z[..., None])
  onehot = jnp.arange(logits.shape[-1]) == labels[..., None]
  grad = softmax * (g_nll + g_log_z)[..., None] - jnp.where(onehot, g_nll[..., None], 0.0)
  return grad, None


nll_and_log_z.defvjp(_nll_and_log_z, _nll_and_log_z_bwd)


def token_xent(
  logits: JTensor,
  labels: JTensor,
  weights: JTensor,
  label_smoothing: float = 0.0,
  z_loss_weight: float = 0.0,
  per_example: bool = False,
) -> NestedMap:
  """Weighted per-token cross-entropy, as T5X computes it (or averaged per example).

  Args:
    logits: [B, T, V] (any float dtype; computed in float32).
    labels: [B, T] int target ids.
    weights: [B, T] per-token weights (0 on padding).
    label_smoothing: mass spread uniformly over the other V - 1 classes; the
      constant entropy of the smoothed target is subtracted so a perfect model
      still has loss 0 (T5X's convention).
    z_loss_weight: coefficient of `logsumexp(logits) ** 2` per token, which
      keeps the softmax normaliser near 1 (PaLM / T5X z-loss).
    per_example: total_loss is the mean over examples (rows with weight) of
      each example's own weighted token mean, as big_vision's PaLI-family
      trainers do, instead of T5X's mean over all weighted tokens of the batch.
      In a mixture whose targets range from 1 token (VQA) to 15 (detection),
      every example then pulls equally, whatever its target length.

  Returns:
    NestedMap with per_token_xent [B, T] (label-smoothed, without z-loss),
    per_token_nll [B, T] (plain -log p(label)), per_sequence_logprob [B]
    (sum of log p(label) over weighted tokens), z_loss [B, T], total_loss
    (scalar, weighted mean of xent + z-loss, per token or per example),
    loss_weight (what total_loss averages over: weighted tokens, or examples
    with weight), total_weight (weighted tokens), accuracy and argmax.
  """
  logits = logits.astype(jnp.float32)
  weights = weights.astype(jnp.float32)
  vocab = logits.shape[-1]
  nll, log_z = nll_and_log_z(logits, labels.astype(jnp.int32))
  if label_smoothing > 0.0:
    on = 1.0 - label_smoothing
    off = label_smoothing / (vocab - 1)
    # Entropy of the smoothed target distribution: the loss's minimum.
    normaliser = -(on * jnp.log(on) + (vocab - 1) * off * jnp.log(off + 1e-20))
    sum_log_prob = jnp.sum(logits, axis=-1) - vocab * log_z
    xent = on * nll - off * (sum_log_prob + nll) - normaliser
  else:
    xent = nll
  z_loss = z_loss_weight * jnp.square(log_z)
  total_weight = jnp.sum(weights)
  denom = jnp.maximum(total_weight, 1.0)
  argmax = jnp.argmax(logits, axis=-1).astype(labels.dtype)
  if per_example:
    row_weight = jnp.sum(weights, axis=-1)
    # 0 for rows without weight (their sum is 0), which loss_weight does not count.
    row_loss = jnp.sum((xent + z_loss) * weights, axis=-1) / jnp.maximum(row_weight, 1e-9)
    loss_weight = jnp.sum((row_weight > 0).astype(jnp.float32))
    total_loss = jnp.sum(row_loss) / jnp.maximum(loss_weight, 1.0)
  else:
    loss_weight = total_weight
    total_loss = jnp.sum((xent + z_loss) * weights) / denom
  return NestedMap(
    per_token_xent=xent,
    per_token_nll=nll,
    per_sequence_logprob=-jnp.sum(nll * weights, axis=-1),
    z_loss=z_loss,
    total_loss=total_loss,
    loss_weight=loss_weight,
    avg_xent=jnp.sum(xent * weights) / denom,
    avg_z_loss=jnp.sum(z_loss * weights) / denom,
    total_weight=total_weight,
    accuracy=jnp.sum((argmax == labels) * weights) / denom,
    argmax=argmax,
  )
