"""The peer: the same PaLI built from Hugging Face transformers parts (PyTorch).

SiglipVisionModel (no pooling head: every patch token, like our ViT) ->
nn.Linear (vit width -> d_model) -> MT5ForConditionalGeneration fed with
`inputs_embeds` (visual tokens, then the embedded prompt) and an attention
mask. Same widths, depths, vocabulary, batch and lengths as ours; torch's own
CPU kernels and default attention implementations (SigLIP: SDPA, mT5: eager).

torch and transformers are imported here only; this module is optional
(requirements/bench-lock.txt) and nothing else in the package imports it.
"""

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import (
  MT5Config,
  MT5ForConditionalGeneration,
  SiglipVisionConfig,
  SiglipVisionModel,
)

from benchmarks import configs, ours
from benchmarks.timing import time_calls


class PeerPali(nn.Module):
  """ViT -> projection -> mT5, all Hugging Face / torch modules."""

  def __init__(self, spec: configs.BenchSpec) -> None:
    super().__init__()
    k = configs.dims(spec)
    vit_cfg = SiglipVisionConfig(
      hidden_size=k['vit_width'],
      intermediate_size=k['vit_mlp'],
      num_hidden_layers=k['vit_depth'],
      num_attention_heads=k['vit_width'] // 64 if k['vit_width'] >= 64 else 1,
      image_size=spec.image_size,
      patch_size=k['patch'],
      hidden_act='gelu_pytorch_tanh',
      layer_norm_eps=1e-6,
      vision_use_head=False,
    )
    from pali_pax.fiddle_configs.vit import parse_variant

    vit_cfg.num_attention_heads = parse_variant(spec.vit)[0].num_heads
    mt5_cfg = MT5Config(
      vocab_size=spec.vocab,
      d_model=k['d_model'],
      d_kv=k['d_kv'],
      d_ff=k['d_ff'],
      num_layers=k['enc_layers'],
      num_decoder_layers=k['dec_layers'],
      num_heads=k['heads'],
      feed_forward_proj='gated-gelu',
      dropout_rate=0.0,
      tie_word_embeddings=False,
      decoder_start_token_id=0,
      pad_token_id=0,
      eos_token_id=1,
    )
    self.vit = SiglipVisionModel(vit_cfg)
    self.proj = nn.Linear(k['vit_width'], k['d_model'])
    self.mt5 = MT5ForConditionalGeneration(mt5_cfg)

  def encoder_inputs(
    self, images: torch.Tensor, input_ids: torch.Tensor
  ) -> tuple[torch.Tensor, torch.Tensor]:
    """images [B, 3, H, W], ids [B, Ti] -> (embeddings [B, N + Ti, D], mask [B, N + Ti])."""
    visual = self.proj(self.vit(pixel_values=images).last_hidden_state)
    prompt = self.mt5.get_input_embeddings()(input_ids)
    mask = torch.cat([torch.ones(visual.shape[:2], dtype=torch.long), (input_ids != 0).long()], 1)
    return torch.cat([visual, prompt], 1), mask

  def forward(
    self,
    images: torch.Tensor,
    input_ids: torch.Tensor,
    decoder_ids: torch.Tensor,
    labels: torch.Tensor,
  ) -> torch.Tensor:
    """Mean token cross-entropy (HF's loss over `labels`)."""
    embs, mask = self.encoder_inputs(images, input_ids)
    out = self.mt5(
      inputs_embeds=embs, attention_mask=mask, decoder_input_ids=decoder_ids, labels=labels
    )
    return out.loss


def torch_batch(spec: configs.BenchSpec) -> dict[str, torch.Tensor]:
  """The same random batch as ours (`ours.random_batch`), as torch tensors (NCHW)."""
  b = ours.random_batch(spec)
  return dict(
    images=torch.from_numpy(np.ascontiguousarray(b.image.transpose(0, 3, 1, 2))),
    input_ids=torch.from_numpy(b.encoder_input_tokens.astype(np.int64)),
    decoder_ids=torch.from_numpy(b.decoder_input_tokens.astype(np.int64)),
    labels=torch.from_numpy(b.decoder_target_tokens.astype(np.int64)),
  )


def no_sync(x: Any) -> Any:
  """torch on CPU runs synchronously: nothing to wait for."""
  return x


def build_train(spec: configs.BenchSpec, threads: int) -> tuple[Any, int]:
  """(step, n_params): `step()` runs forward, backward and AdamW once, returns the loss."""
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  model = PeerPali(spec).train()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
  batch = torch_batch(spec)

  def step() -> float:
    loss = model(**batch)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()  # .item() waits for the step (CPU: synchronous anyway)

  return step, int(sum(p.numel() for p in model.parameters()))


def record(spec: configs.BenchSpec, timing: Any, n_params: int, threads: int) -> dict[str, Any]:
  """JSON-able record of the peer's measured train step."""
  return dict(
    spec=dataclasses.asdict(spec),
    step=timing.to_json(),
    examples_per_s=spec.batch / timing.median,
    n_params=n_params,
    threads=threads,
    torch=torch.__version__,
  )


def bench_train(spec: configs.BenchSpec, repeats: int, threads: int) -> dict[str, Any]:
  """Peer train step timed alone (see `build_train`)."""
  step, n_params = build_train(spec, threads)
  timing = time_calls(step, repeats, 1, label=f'peer {spec.name} train', sync=no_sync)
  return record(spec, timing, n_params, threads)


def generate_fns(spec: configs.BenchSpec, lengths: tuple[int, ...], threads: int) -> dict[int, Any]:
  """{n: fn} where fn() runs the ViT, the projection and greedy `generate` of n tokens.

  `generate` encodes once, then runs n cached decoder steps (use_cache=True);
  `min_new_tokens` forces exactly n tokens whatever the random weights predict.
  """
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  model = PeerPali(spec).eval()
  batch = torch_batch(spec)

  def make(n: int) -> Any:
    def gen() -> torch.Tensor:
      with torch.inference_mode():
        embs, mask = model.encoder_inputs(batch['images'], batch['input_ids'])
        return model.mt5.generate(
          inputs_embeds=embs,
          attention_mask=mask,
          max_new_tokens=n,
          min_new_tokens=n,
          do_sample=False,
          num_beams=1,
          use_cache=True,
        )

    return gen

  return {n: make(n) for n in lengths}


MATMUL_OPS = (
  'aten::mm',
  'aten::addmm',
  'aten::bmm',
  'aten::baddbmm',
  'aten::matmul',
  'aten::linear',
  'aten::convolution',
  'aten::_scaled_dot_product_flash_attention_for_cpu',
)


def profile_train(spec: configs.BenchSpec, threads: int, steps: int = 2) -> dict[str, Any]:
  """torch.profiler split of the peer's step: {'matmul_s', 'total_s', 'top'} per step.

  Self CPU time of the leaf matmul kernels (mm, addmm, bmm, SDPA's fused
  kernel) against the sum of every op's self time, the same split
  `benchmarks.profile` makes for ours.
  """
  from torch.profiler import ProfilerActivity, profile

  step, _ = build_train(spec, threads)
  step()
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(steps):
      step()
  events = prof.key_averages()
  total = sum(e.self_cpu_time_total for e in events) / 1e6 / steps
  mm = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / 1e6 / steps
  top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
  return {
    'matmul_s': mm,
    'total_s': total,
    'top': [[e.key, e.self_cpu_time_total / 1e6 / steps, e.count // steps] for e in top],
  }
