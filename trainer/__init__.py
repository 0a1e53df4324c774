"""Whetstone's trainer: one fine-tuning job from a JobSpec to adapter checkpoints.

Needs the `train` extra (torch, transformers, peft); what it shares with the service and
the serving plugin (the JobSpec, the store, the layout, the chat encoding, the progress
messages) lives in the torch-free `contracts` package.
"""
