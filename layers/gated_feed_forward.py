"""praxis `TransformerFeedForward` whose two gated input projections run as one matmul.

T5.1.1's gated feed-forward computes `gelu(x wi_0) * (x wi_1)`: two [D, F]
matmuls over the same input. This layer stacks the two weights at compute time
([D, 2, F], contiguous as [D, 2F]), runs one matmul and splits the result, which
gives XLA one larger GEMM (and, when decoding, one kernel instead of two). The
new axis keeps F where sharding splits it, so a model-parallel F needs no
communication (a concatenation along F would interleave the shards). The
variables are praxis' own (`ffn_layer1_gate/linear/w` = wi_0,
`ffn_layer1/linear/w` = wi_1), so checkpoints and converters are unchanged.
"""

import jax.numpy as jnp
from praxis import base_layer, pytypes
from praxis.layers import transformers as praxis_transformers

from pali_pax.layers import lora

JTensor = pytypes.JTensor


class GatedFeedForward(praxis_transformers.TransformerFeedForward):
  """Gated feed-forward with the gate and linear projections fused.

  Attributes:
    fuse_gated_projections: compute `ffn_layer1_gate` and `ffn_layer1` as one
      matmul (gated, bias-free configurations only; otherwise praxis' path).
      Off by default: on XLA CPU it measured no faster to train and slower to
      decode, where the weights are stacked again on every step
      (docs/benchmarks.md); for backends that prefer fewer, larger matmuls.
  """

  fuse_gated_projections: bool = False

  def _compute_ffns(
    self, inputs: JTensor, paddings: JTensor | None, ap_ff0: pytypes.SplitDimsMapping = None
  ) -> JTensor:
    """[..., D] -> [..., D]: `ffn_layer2(gelu(x wi_0) * x wi_1)`."""
    if not (self.fuse_gated_projections and self._is_ffn1_gated and not self.has_bias):
      return super()._compute_ffns(inputs, paddings, ap_ff0)
    gate_layer, linear_layer = self.ffn_layer1_gate, self.ffn_layer1
    # LoRA projections (`layers.lora`) run as layers: base matmul plus adapter.
    if lora.has_adapter(gate_layer.linear) or lora.has_adapter(linear_layer.linear):
      return super()._compute_ffns(inputs, paddings, ap_ff0)
    # [D, 2, F]: wi_0 then wi_1; the weights keep their own variables.
    w = jnp.stack([gate_layer.linear.theta.w, linear_layer.linear.theta.w], axis=1)
    hidden = jnp.einsum('...D,DKF->...KF', gate_layer.linear._cast_to_fprop_dtype(inputs), w)
    gate, linear = hidden[..., 0, :], hidden[..., 1, :]
    activations = gate_layer.activation(gate) * linear_layer.activation(linear)
    activations = base_layer.maybe_shard(activations, ap_ff0, self.mesh_axis_names)
    if not self.apply_padding_first and paddings is not None:
      activations *= 1.0 - paddings
    activations = self.relu_dropout(activations)
    return self.ffn_layer2(activations)
