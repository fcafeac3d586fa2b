"""ViT embeddings: patch embedding layer and position-embedding helpers.

`PatchEmbedding` is big_vision's `embedding` conv (VALID, stride = kernel) as one
matmul; `posemb_sincos_2d` is big_vision's fixed 2-D sin-cos embedding;
`resample_posemb` changes the grid of a learned one (high-resolution phase).
"""

import jax.numpy as jnp
import numpy as np
import scipy.ndimage
from praxis import base_layer, pytypes

from pali_pax.core import errors

JTensor = pytypes.JTensor
SplitDimsMapping = pytypes.SplitDimsMapping
WeightHParams = base_layer.WeightHParams
WeightInit = base_layer.WeightInit


def posemb_sincos_2d(h: int, w: int, width: int, temperature: float = 10_000.0) -> np.ndarray:
  """Fixed 2-D sin-cos position embedding (MoCo v3 / big_vision layout).

  Channel blocks of width/4 each: [sin(x * omega), cos(x * omega), sin(y * omega),
  cos(y * omega)] with omega_k = temperature ** (-k / (width/4 - 1)); tokens are
  numbered row-major over the (h, w) patch grid.

  Args:
    h: grid rows.
    w: grid columns.
    width: embedding size, a multiple of 4.
    temperature: frequency base.

  Returns:
    float32 array [1, h * w, width].
  """
  if width % 4:
    raise errors.ConfigError(f'sincos2d position embedding needs width % 4 == 0, got width={width}')
  quarter = width // 4
  omega = 1.0 / temperature ** (np.arange(quarter, dtype=np.float64) / max(quarter - 1, 1))
  rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
  y = rows.reshape(-1, 1).astype(np.float64) * omega[None, :]
  x = cols.reshape(-1, 1).astype(np.float64) * omega[None, :]
  pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
  return pe[None].astype(np.float32)


def resample_posemb(
  posemb: np.ndarray | JTensor,
  new_grid: tuple[int, int],
  old_grid: tuple[int, int] | None = None,
) -> np.ndarray:
  """Bilinearly resamples a learned position embedding to a new patch grid.

  big_vision's `resample_posemb`: `scipy.ndimage.zoom(grid, zoom, order=1)`,
  i.e. corner-aligned linear interpolation along rows and columns, so the four
  corner embeddings are kept and a linear ramp stays exactly linear
  (`jax.image.resize` is half-pixel-centred and would give other values).
  E.g. ViT-G/14 from 224 to 588 pixels: 16x16 -> 42x42 grid.

  Args:
    posemb: [1, N, D] with N = old_grid[0] * old_grid[1].
    new_grid: (rows, cols) of the target patch grid.
    old_grid: (rows, cols) of the source grid; default: square sqrt(N).

  Returns:
    float32 numpy array [1, new_grid[0] * new_grid[1], D].
  """
  posemb = np.asarray(posemb)
  if posemb.ndim != 3 or posemb.shape[0] != 1:
    raise errors.InputValidationError(f'posemb must have shape [1, N, D], got {posemb.shape}')
  n, d = posemb.shape[1:]
  if old_grid is None:
    side = int(round(np.sqrt(n)))
    if side * side != n:
      raise errors.InputValidationError(f'posemb has {n} tokens, not a square grid; pass old_grid')
    old_grid = (side, side)
  if old_grid[0] * old_grid[1] != n:
    raise errors.InputValidationError(f'old_grid {old_grid} does not hold {n} tokens')
  new_grid = (int(new_grid[0]), int(new_grid[1]))
  if tuple(old_grid) == new_grid:
    return posemb.astype(np.float32)
  grid = posemb.reshape(old_grid[0], old_grid[1], d).astype(np.float64)
  zoom = (new_grid[0] / old_grid[0], new_grid[1] / old_grid[1], 1)
  out = scipy.ndimage.zoom(grid, zoom, order=1)
  return out.reshape(1, new_grid[0] * new_grid[1], d).astype(np.float32)


class PatchEmbedding(base_layer.BaseLayer):
  """Non-overlapping patch embedding: a VALID conv with stride = kernel size.

  Written as reshape + einsum (one matmul), numerically the conv of big_vision's
  `embedding` layer, whose kernel layout [p, p, C, D] it keeps.

  Attributes:
    patch_size: side p of the square patches, in pixels.
    input_channels: C, channels of the image.
    output_dims: D, embedding size.
  """

  patch_size: int = 14
  input_channels: int = 3
  output_dims: int = 0

  class WeightSharding(base_layer.BaseLayer.WeightSharding):
    """Attributes:

    wt: split dims of the kernel [p, p, C, D]; the bias [D] follows wt[-1].
    """

  class ActivationSharding(base_layer.BaseLayer.ActivationSharding):
    """Attributes:

    out: split dims of the output [B, T, D].
    """

    out: SplitDimsMapping = None

  def setup(self) -> None:
    p, c, d = self.patch_size, self.input_channels, self.output_dims
    wt = self.weight_split_dims_mapping.wt
    fan_in = p * p * c
    self.create_variable(
      'w',
      WeightHParams(
        shape=[p, p, c, d],
        init=WeightInit.Uniform((6.0 / (fan_in + d)) ** 0.5),
        mesh_shape=self.mesh_shape,
        tensor_split_dims_mapping=wt,
      ),
    )
    self.create_variable(
      'b',
      WeightHParams(
        shape=[d],
        init=WeightInit.Constant(0.0),
        mesh_shape=self.mesh_shape,
        tensor_split_dims_mapping=None if wt is None else [wt[-1]],
      ),
    )

  def __call__(self, images: JTensor) -> JTensor:
    """[B, H, W, C] -> [B, (H/p) * (W/p), D], patches numbered row-major."""
    b, h, w, c = images.shape
    p = self.patch_size
    x = jnp.reshape(images, (b, h // p, p, w // p, p, c))
    x = jnp.einsum('bhpwqc,pqcd->bhwd', x, self.theta.w)
    x = jnp.reshape(x, (b, (h // p) * (w // p), self.output_dims)) + self.theta.b
    return base_layer.maybe_shard(x, self.activation_split_dims_mapping.out, self.mesh_axis_names)
