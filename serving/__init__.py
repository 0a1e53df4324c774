"""Beside vLLM: the launcher and supervisor of vLLM servers, and the LoRA resolver plugin."""
