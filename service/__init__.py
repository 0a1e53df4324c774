"""Whetstone's control plane: the OpenAI-compatible API (FastAPI), auth, persistence."""
