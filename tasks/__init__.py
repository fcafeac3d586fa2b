"""PaLI tasks: vocabulary, prompts, preprocessing, seqio tasks and mixtures, readers, metrics."""
