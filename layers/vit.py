"""Vision Transformer (big_vision flavour) as Praxis layers.

The image encoder of PaLI: a conv patch embedding, a position embedding
(learned or fixed 2-D sin-cos), pre-LayerNorm transformer blocks (multi-head
attention with biases, tanh-GELU MLP) and a final LayerNorm. There is no class
token and no pooling: every patch token is returned, `[B, N, width]` with
`N = (image_size / patch_size) ** 2`.

Numerically this is big_vision's `models/vit.py` with `pool_type='none'` and
Hugging Face's `SiglipVisionModel.last_hidden_state`. The transformer blocks are
praxis' own `Transformer` layers, configured to compute exactly the big_vision
block (LayerNorm eps 1e-6 with direct scale, 1/sqrt(head_dim) query scaling and
no per-dim scale, biases everywhere, no attention dropout).

Parameter tree (`params` collection), D = width, F = mlp_dim, N = num_heads,
H = D / N, L = depth, p = patch_size, T = number of patches:

    patch_embedding/w              [p, p, 3, D]
    patch_embedding/b              [D]
    pos_embedding                  [1, T, D]        (posemb='learn' only)
    transformer/<block>/layer_norm/{scale, bias}             [D]
    transformer/<block>/self_attention/{query,key,value}/w   [D, N, H]
    transformer/<block>/self_attention/{query,key,value}/b   [N, H]
    transformer/<block>/self_attention/post/w                [D, N, H]
    transformer/<block>/self_attention/post/b                [D]
    transformer/<block>/ff_layer/layer_norm/{scale, bias}    [D]
    transformer/<block>/ff_layer/ffn_layer1/linear/w         [D, F]
    transformer/<block>/ff_layer/ffn_layer1/bias/b           [F]
    transformer/<block>/ff_layer/ffn_layer2/linear/w         [F, D]
    transformer/<block>/ff_layer/ffn_layer2/bias/b           [D]
    encoder_norm/{scale, bias}                               [D]

where `<block>` is `x_layers_{i}` (scan=False, one subtree per layer) or
`repeat/sub/x_layers_0` (scan=True, every leaf gets a leading [L] axis).
"""

import jax.numpy as jnp
import numpy as np
from praxis import base_layer, pax_fiddle, pytypes
from praxis.layers import activations, normalizations, repeats, stochastics
from praxis.layers import transformers as praxis_transformers

from pali_pax.core import errors
from pali_pax.layers.vit_embedding import PatchEmbedding, posemb_sincos_2d, resample_posemb

__all__ = [
  'PatchEmbedding',
  'VisionTransformer',
  'posemb_sincos_2d',
  'resample_posemb',
]

JTensor = pytypes.JTensor
SplitDimsMapping = pytypes.SplitDimsMapping
WeightHParams = base_layer.WeightHParams
WeightInit = base_layer.WeightInit
LayerTpl = pax_fiddle.Config[base_layer.BaseLayer]
template_field = base_layer.template_field
AutodiffCheckpointType = repeats.AutodiffCheckpointType

POSEMB_TYPES = ('learn', 'sincos2d')


class VisionTransformer(base_layer.BaseLayer):
  """ViT image encoder without class token or pooling (PaLI's visual tokens).

  Attributes:
    image_size: side of the (square) input images, in pixels.
    patch_size: side of the square patches, in pixels.
    width: model dimension D.
    depth: number of transformer blocks L.
    mlp_dim: hidden size F of the MLP blocks.
    num_heads: attention heads; D must be divisible by it.
    posemb: 'learn' (parameter [1, T, D]) or 'sincos2d' (fixed, no parameter).
    dropout: dropout rate after the position embedding, on each residual branch
      and after the MLP activation (big_vision places; no attention dropout).
    layer_norm_epsilon: epsilon of every LayerNorm.
    scan: stack the blocks with praxis `repeats.Repeat` (one compiled block,
      params with a leading [L] axis) instead of a Python list of blocks.
    checkpoint_policy: rematerialisation policy of the scanned blocks.
    transformer_tpl: the transformer blocks (praxis `StackedTransformer`).
      `setup` sets its sizes and dropouts from the fields above and makes its
      block big_vision's (pre-LayerNorm, biases, tanh-GELU); everything else
      (sharding of the attention / MLP weights, remat, dtypes) is the
      template's. With `scan` it runs under `StackedTransformerRepeated`.
  """

  image_size: int = 224
  patch_size: int = 14
  width: int = 768
  depth: int = 12
  mlp_dim: int = 3072
  num_heads: int = 12
  posemb: str = 'learn'
  dropout: float = 0.0
  layer_norm_epsilon: float = 1e-6
  scan: bool = False
  checkpoint_policy: AutodiffCheckpointType = AutodiffCheckpointType.SAVE_NOTHING
  transformer_tpl: LayerTpl = template_field(praxis_transformers.StackedTransformer)

  class WeightSharding(base_layer.BaseLayer.WeightSharding):
    """How the weights are split over the mesh (None: replicated).

    The attention and MLP weights are split by the sharding fields of
    `transformer_tpl`'s block (praxis `DotProductAttention` / `TransformerFeedForward`).

    Attributes:
      patch: kernel [p, p, 3, D] of the patch embedding.
      pos: learned position embedding [1, T, D].
    """

    patch: SplitDimsMapping = None
    pos: SplitDimsMapping = None

  class ActivationSharding(base_layer.BaseLayer.ActivationSharding):
    """How activations are split over the mesh.

    Attributes:
      bhwc: input images [B, H, W, 3].
      bld: token activations [B, T, D].
    """

    bhwc: SplitDimsMapping = None
    bld: SplitDimsMapping = None

  @property
  def grid_size(self) -> tuple[int, int]:
    """(rows, cols) of the patch grid at `image_size`."""
    g = self.image_size // self.patch_size
    return (g, g)

  @property
  def num_patches(self) -> int:
    """T, number of visual tokens per image at `image_size`."""
    return self.grid_size[0] * self.grid_size[1]

  def _check_hparams(self) -> None:
    if self.image_size <= 0 or self.patch_size <= 0:
      raise errors.ConfigError(
        f'image_size and patch_size must be positive, got {self.image_size}, {self.patch_size}'
      )
    if self.image_size % self.patch_size:
      raise errors.ConfigError(
        f'image_size {self.image_size} is not divisible by patch_size {self.patch_size}'
      )
    if self.num_heads <= 0 or self.width % self.num_heads:
      raise errors.ConfigError(f'width {self.width} is not divisible by num_heads {self.num_heads}')
    if self.posemb not in POSEMB_TYPES:
      raise errors.ConfigError(f'unknown posemb {self.posemb!r}; valid: {POSEMB_TYPES}')
    if self.posemb == 'sincos2d' and self.width % 4:
      raise errors.ConfigError(f'posemb sincos2d needs width % 4 == 0, got width {self.width}')
    if self.depth <= 0 or self.mlp_dim <= 0:
      raise errors.ConfigError(
        f'depth and mlp_dim must be positive, got {self.depth}, {self.mlp_dim}'
      )

  def _transformer_p(self) -> LayerTpl:
    """`transformer_tpl` set to compute big_vision's encoder blocks at this size."""
    stack = self.transformer_tpl.clone().set(
      num_layers=1 if self.scan else self.depth,
      model_dims=self.width,
      hidden_dims=self.mlp_dim,
      num_heads=self.num_heads,
      dim_per_head=self.width // self.num_heads,
      dropout_prob=0.0,
      atten_dropout_prob=0.0,
      residual_dropout_prob=self.dropout,
      relu_dropout_prob=self.dropout,
    )
    block = stack.transformer_layer_params_tpl
    block.norm_policy = 'pre'
    block.ln_tpl.set(epsilon=self.layer_norm_epsilon, direct_scale=True)
    # Biases everywhere and plain q / sqrt(head_dim) (no learned per-dim scale).
    block.tr_atten_tpl.set(use_bias=True, internal_enable_per_dim_scale=False)
    ffn = block.tr_fflayer_tpl
    ffn.set(has_bias=True, activation_tpl=pax_fiddle.Config(activations.GELU, approximate=True))
    ffn.ln_tpl.set(epsilon=self.layer_norm_epsilon, direct_scale=True)
    if not self.scan:
      return stack
    return pax_fiddle.Config(
      praxis_transformers.StackedTransformerRepeated,
      block=stack,
      x_times=self.depth,
      checkpoint_policy=self.checkpoint_policy,
    )

  def setup(self) -> None:
    self._check_hparams()
    wp = self.weight_split_dims_mapping
    patch = pax_fiddle.Config(PatchEmbedding, patch_size=self.patch_size, output_dims=self.width)
    patch.weight_split_dims_mapping.wt = wp.patch
    patch.activation_split_dims_mapping.out = self.activation_split_dims_mapping.bld
    self.create_child('patch_embedding', patch)
    if self.posemb == 'learn':
      self.create_variable(
        'pos_embedding',
        WeightHParams(
          shape=[1, self.num_patches, self.width],
          init=WeightInit.Gaussian(1.0 / np.sqrt(self.width)),
          mesh_shape=self.mesh_shape,
          tensor_split_dims_mapping=wp.pos,
        ),
      )
    self.create_child(
      'input_dropout', pax_fiddle.Config(stochastics.Dropout, keep_prob=1.0 - self.dropout)
    )
    self.create_child('transformer', self._transformer_p())
    self.create_child(
      'encoder_norm',
      pax_fiddle.Config(
        normalizations.LayerNorm,
        dim=self.width,
        epsilon=self.layer_norm_epsilon,
        direct_scale=True,
      ),
    )

  def _check_images(self, images: JTensor) -> tuple[int, int]:
    if images.ndim != 4:
      raise errors.InputValidationError(
        f'images must have shape [B, H, W, 3], got rank {images.ndim}: {images.shape}'
      )
    if images.shape[-1] != 3:
      raise errors.InputValidationError(
        f'images must have 3 channels (RGB, last axis), got shape {images.shape}'
      )
    h, w = images.shape[1:3]
    p = self.patch_size
    if h % p or w % p:
      raise errors.InputValidationError(f'image size {h}x{w} is not divisible by patch_size {p}')
    if self.posemb == 'learn' and (h // p, w // p) != self.grid_size:
      raise errors.InputValidationError(
        f'images are {h}x{w} but the learned position embedding is for {self.image_size}x'
        f'{self.image_size} (grid {self.grid_size}); set image_size and resample the '
        "checkpoint with resample_posemb / the converters' image_size argument"
      )
    return h // p, w // p

  def __call__(self, images: JTensor) -> JTensor:
    """Encodes images into patch tokens.

    Args:
      images: [B, H, W, 3] float, in [-1, 1] by PaLI convention.

    Returns:
      [B, T, D] with T = (H / p) * (W / p): the final-LayerNorm token embeddings.
    """
    gh, gw = self._check_images(images)
    ap = self.activation_split_dims_mapping
    images = jnp.asarray(images, self.fprop_dtype)
    images = base_layer.maybe_shard(images, ap.bhwc, self.mesh_axis_names)
    x = self.patch_embedding(images)
    if self.posemb == 'learn':
      x = x + self.theta.pos_embedding
    else:
      x = x + jnp.asarray(posemb_sincos_2d(gh, gw, self.width), x.dtype)
    x = base_layer.maybe_shard(x, ap.bld, self.mesh_axis_names)
    x = self.input_dropout(x)
    paddings = jnp.zeros(x.shape[:2], x.dtype)
    x = self.transformer(x, paddings)
    x = self.encoder_norm(x)
    return base_layer.maybe_shard(x, ap.bld, self.mesh_axis_names)
