"""Checkpoint converters: public mT5 / ViT checkpoints -> Pax (orbax) checkpoints."""
