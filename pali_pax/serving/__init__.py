"""Serving PaLI: servable configs, SavedModel export, int8 weights (and the local server).

servable     saxml-shaped serving settings per experiment (`servable_for`)
int8         per-channel symmetric int8 weights of the ViT / mT5 linears
saved_model  a TensorFlow SavedModel (strings in, strings out) from a job dir
"""
