"""Checkpoint converters: public mT5 / ViT checkpoints -> our Praxis parameter trees.

load_mt5(path, cfg)                  HF mT5 directory or T5X checkpoint directory
load_vit(path, cfg, image_size=None) big_vision .npz or HF SigLIP directory
pali_pax.checkpoint.convert_to_pax   both -> a Pax checkpoint paxml.main starts from
"""

from pali_pax.convert.mt5 import load_mt5
from pali_pax.convert.vit import load_vit

__all__ = ['load_mt5', 'load_vit']
