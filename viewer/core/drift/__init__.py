"""Drift and live performance from mergeable sketches: ``sketch`` summarises a window's columns,
``stats`` computes the figures (Evidently's and NannyML's definitions) from two sketches."""
