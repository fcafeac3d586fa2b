"""Analytic matmul FLOPs of one PaLI step (model FLOPs, for MFU).

Counts 2*m*n*k for every matmul of the forward pass: the ViT over its N visual
tokens, the projection, the mT5 encoder over (N + Ti) tokens, the decoder over
To tokens (self-attention, cross-attention whose keys/values span the N + Ti
encoder tokens, gated feed-forward) and the lm head over the vocabulary.
Elementwise work (norms, softmax, GELU, the optimizer) is left out: it is a
few percent of the matmuls at these widths and does not run on a matmul unit.

A training step is forward + backward, and the backward pass of a matmul costs
two matmuls of the same size (gradient w.r.t. input and w.r.t. weight), so
train = 3 x forward, except the patch embedding whose input (the image)
needs no gradient: 2 x. Recomputation (rematerialisation) is *not* counted:
these are model FLOPs, the numerator of MFU.
"""

from benchmarks import configs


def vit_forward(n: int, width: int, depth: int, mlp: int, patch: int) -> dict[str, float]:
  """FLOPs of one image through the ViT: {'patch', 'blocks'}.

  Args:
    n: visual tokens N.
    width: D.
    depth: blocks L.
    mlp: MLP hidden F.
    patch: patch side p (the embedding is a [p*p*3, D] matmul).
  """
  d = width
  per_block = (
    2 * n * d * 3 * d  # q, k, v projections
    + 2 * n * n * d  # logits q.k over all heads
    + 2 * n * n * d  # probs.v
    + 2 * n * d * d  # output projection
    + 2 * 2 * n * d * mlp  # MLP in and out
  )
  return {'patch': 2.0 * n * patch * patch * 3 * d, 'blocks': float(depth * per_block)}


def encoder_forward(s: int, d: int, inner: int, ff: int, layers: int) -> float:
  """mT5 encoder over S tokens; inner = heads * d_kv; gated FF has 3 matmuls."""
  per_layer = 4 * 2 * s * d * inner + 2 * 2 * s * s * inner + 3 * 2 * s * d * ff
  return float(layers * per_layer)


def decoder_forward(t: int, s: int, d: int, inner: int, ff: int, layers: int) -> float:
  """mT5 decoder over T tokens attending to S encoder tokens (teacher forced)."""
  self_att = 4 * 2 * t * d * inner + 2 * 2 * t * t * inner
  cross = 2 * 2 * t * d * inner + 2 * 2 * s * d * inner + 2 * 2 * t * s * inner
  per_layer = self_att + cross + 3 * 2 * t * d * ff
  return float(layers * per_layer)


def forward_breakdown(spec: configs.BenchSpec) -> dict[str, float]:
  """Forward FLOPs per step (whole batch), by component.

  Keys: vit_patch, vit_blocks, fusion, encoder, decoder, lm_head.
  """
  k = configs.dims(spec)
  n, b = k['n_visual'], spec.batch
  inner = k['heads'] * k['d_kv']
  s = n + spec.input_len
  vit = vit_forward(n, k['vit_width'], k['vit_depth'], k['vit_mlp'], k['patch'])
  out = {
    'vit_patch': vit['patch'],
    'vit_blocks': vit['blocks'],
    'fusion': 2.0 * n * k['vit_width'] * k['d_model'],
    'encoder': encoder_forward(s, k['d_model'], inner, k['d_ff'], k['enc_layers']),
    'decoder': decoder_forward(spec.target_len, s, k['d_model'], inner, k['d_ff'], k['dec_layers']),
    'lm_head': 2.0 * spec.target_len * k['d_model'] * spec.vocab,
  }
  return {name: b * v for name, v in out.items()}


def train_flops(spec: configs.BenchSpec) -> float:
  """Model FLOPs of one training step (forward + backward) for the batch."""
  fwd = forward_breakdown(spec)
  return 3.0 * sum(fwd.values()) - fwd['vit_patch']


def forward_flops(spec: configs.BenchSpec) -> float:
  """Model FLOPs of one forward pass (teacher forced) for the batch."""
  return sum(forward_breakdown(spec).values())
