"""Checkpoint converters: public mT5 / ViT checkpoints -> our Praxis parameter trees.

load_mt5(path, cfg)                  HF mT5 directory or T5X checkpoint directory
load_vit(path, cfg, image_size=None) big_vision .npz or HF SigLIP directory
mt5_config_from_checkpoint(path)     the sizes a checkpoint gives, as a layer config
vit_config_from_checkpoint(path)     (both formats of each)
to_pax.convert_to_pax(exp, job)   both -> a Pax checkpoint paxml.main starts from

Each side has one shape: a dispatcher (mt5.py, vit.py) over per-format readers
(mt5_hf.py, mt5_t5x.py; vit_hf.py, vit_big_vision.py) and a common module
(mt5_common.py, vit_common.py), on tree.py (strict filling, scan stacking) and
hf_files.py. Errors: `pali_pax.core.errors.CheckpointMismatchError` (a tensor does
not fit, named) and `FileFormatError` (a file cannot be parsed, named).
"""

from pali_pax.convert.mt5 import load_mt5, mt5_config_from_checkpoint
from pali_pax.convert.vit import load_vit, vit_config_from_checkpoint

__all__ = ['load_mt5', 'load_vit', 'mt5_config_from_checkpoint', 'vit_config_from_checkpoint']
