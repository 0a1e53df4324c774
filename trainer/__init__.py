"""Whetstone's trainer: one fine-tuning job from a JobSpec to adapter checkpoints.

The modules `spec`, `store`, `layout` and `chat` are torch-free contracts that the service
and the serving plugin import; everything else needs the `train` extra.
"""
