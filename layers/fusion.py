"""The PaLI fusion layer: visual tokens projected into the mT5 encoder input.

PaLI feeds every ViT patch token, linearly projected to the mT5 width, to the
mT5 encoder *before* the embedded prompt tokens. Examples without an image
(text-only tasks such as span corruption) keep the visual slots but mark them
as padding: mT5's attention masks them out and its relative position bias only
sees distances between unmasked tokens, so such an example computes exactly
what plain mT5 computes on its prompt.
"""

import jax.numpy as jnp
from praxis import base_layer, pax_fiddle, pytypes
from praxis.layers import activations, linears

from pali_pax.core import errors

JTensor = pytypes.JTensor
template_field = pax_fiddle.template_field


class PaliFusion(base_layer.BaseLayer):
  """Projects visual tokens and prepends them to the embedded prompt.

  Attributes:
    vit_dims: width of the ViT output tokens (e.g. 1664 for ViT-G).
    model_dims: width of the mT5 encoder (e.g. 1024 for mT5-Large).
    projection_tpl: the learned linear projection (with bias) from `vit_dims`
      to `model_dims`; `input_dims` / `output_dims` are set in `setup`.
  """

  vit_dims: int = 0
  model_dims: int = 0
  projection_tpl: pax_fiddle.Config[linears.FeedForward] = template_field(linears.FeedForward)

  class ActivationSharding(base_layer.BaseLayer.ActivationSharding):
    """Activation sharding of the fused encoder input.

    Attributes:
      btd: sharding of the fused [B, N + T, D] embeddings, e.g.
        [('replica', 'data'), None, 'mdl'].
    """

    btd: base_layer.SplitDimsMapping = None

  def setup(self) -> None:
    if self.vit_dims <= 0 or self.model_dims <= 0:
      raise errors.ConfigError(
        f'PaliFusion needs positive vit_dims and model_dims, got {self.vit_dims}, {self.model_dims}'
      )
    proj = self.projection_tpl.clone()
    proj.input_dims = self.vit_dims
    proj.output_dims = self.model_dims
    proj.has_bias = True
    proj.activation_tpl = pax_fiddle.Config(activations.Identity)
    self.create_child('img_proj', proj)

  def __call__(
    self,
    image_tokens: JTensor,
    has_image: JTensor,
    prompt_embs: JTensor,
    prompt_paddings: JTensor,
  ) -> tuple[JTensor, JTensor]:
    """Builds the mT5 encoder input.

    Args:
      image_tokens: [B, N, vit_dims] ViT output (no pooling).
      has_image: [B] 1.0 where the example has an image, 0.0 for text-only.
      prompt_embs: [B, T, model_dims] embedded prompt tokens.
      prompt_paddings: [B, T] 1.0 on padding positions.

    Returns:
      (embeddings [B, N + T, model_dims], paddings [B, N + T]).
    """
    visual = self.img_proj(image_tokens).astype(prompt_embs.dtype)
    n = visual.shape[1]
    # Zero the projected tokens of text-only rows as well as masking them, so
    # nothing of the (blank) image can leak through any path.
    keep = has_image.astype(visual.dtype)[:, None, None]
    visual = visual * keep
    visual_paddings = jnp.broadcast_to(1.0 - has_image[:, None], (has_image.shape[0], n))
    embs = jnp.concatenate([visual, prompt_embs], axis=1)
    embs = base_layer.maybe_shard(
      embs, self.activation_split_dims_mapping.btd, self.mesh_axis_names
    )
    paddings = jnp.concatenate(
      [visual_paddings.astype(prompt_paddings.dtype), prompt_paddings], axis=1
    )
    return embs, paddings
