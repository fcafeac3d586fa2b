"""Praxis layers of PaLI: ViT, mT5 encoder-decoder, the fusion layer."""

from pali_pax.core import jax_compat

# praxis 1.4 calls jax.tree_map & co. (removed in jax 0.6) when these layers are traced.
jax_compat.add_tree_aliases()
