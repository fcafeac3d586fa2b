"""LoRA as a config rewrite: every projection template of a model becomes its LoRA variant.

Like paxml's LoRA mixin, nothing in the model code changes: `apply_lora` walks a
model's Fiddle graph and swaps each praxis `Linear` / `AttentionProjection`
template for `layers.lora.LoraLinear` / `LoraAttentionProjection` with the
experiment's rank, alpha and targets. Each layer then decides by its own module
path whether it carries an adapter (`layers.lora`), because one template often
builds several layers (T5Attention's `proj_tpl` builds query, key, value and post).

Layer paths of PaliModel (scan=True ViT, per-layer mT5), as LORA_TARGETS sees them:

    vit/transformer/repeat/sub/x_layers_0/self_attention/{query,key,value,post}
    vit/transformer/repeat/sub/x_layers_0/ff_layer/ffn_layer{1,2}/linear
    mt5/{encoder,decoder}/x_layers_<i>/self_attention/{query,key,value,post}
    mt5/decoder/x_layers_<i>/cross_attention/{query,key,value,post}
    mt5/{encoder,decoder}/x_layers_<i>/ff/ffn_layer{1_gate,1,2}/linear   (wi_0, wi_1, wo)
"""

from collections.abc import Sequence

import fiddle as fdl
from fiddle import daglish
from praxis import pax_fiddle
from praxis.layers import attentions, linears

from pali_pax.core import errors
from pali_pax.layers import lora

# Attention q/k/v/out (self and cross) and feed-forward wi/wo of both towers.
DEFAULT_TARGETS: tuple[str, ...] = (
  r'(self|cross)_attention/(query|key|value|post)$',
  r'/ffn_layer(1_gate|1|2)/linear$',
)
_LORA_OF = {
  linears.Linear: lora.LoraLinear,
  attentions.AttentionProjection: lora.LoraAttentionProjection,
}


def apply_lora(
  cfg: pax_fiddle.Config, rank: int, alpha: float, targets: Sequence[str] = DEFAULT_TARGETS
) -> pax_fiddle.Config:
  """Rewrites `cfg` in place: every Linear / AttentionProjection template gets LoRA.

  Args:
    cfg: a model config (e.g. PaliModel's).
    rank: LoRA rank r (> 0).
    alpha: the adapter adds (alpha / r) B A x.
    targets: regexes over layer paths (see the module doc); a projection whose
      path matches none computes the base layer and has no adapter.

  Returns:
    `cfg`, for chaining.

  Raises:
    ConfigError: rank <= 0 or no targets.
  """
  if rank <= 0:
    raise errors.ConfigError(f'LORA_RANK must be positive for LoRA, got {rank}')
  if not targets:
    raise errors.ConfigError('LORA_TARGETS is empty: no layer would get an adapter')
  rewritten = 0
  for value, _ in daglish.iterate(cfg):
    if not isinstance(value, fdl.Buildable):
      continue
    lora_cls = _LORA_OF.get(fdl.get_callable(value))
    if lora_cls is None:
      continue
    fdl.update_callable(value, lora_cls)
    value.lora_rank = rank
    value.lora_alpha = float(alpha)
    value.lora_targets = tuple(targets)
    rewritten += 1
  if not rewritten:
    raise errors.ConfigError('the model config has no Linear / AttentionProjection template')
  return cfg
