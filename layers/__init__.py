"""Praxis layers of PaLI: ViT, mT5 encoder-decoder, the fusion layer."""
