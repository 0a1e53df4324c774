"""Whetstone's clients: the Python SDK (`clients.sdk`), the `whetstone` CLI (`clients.cli`)
and the dataset line formats (`clients.formats`) shared with the server.

Published alone: depends on httpx, pydantic, typer and rich, nothing else of Whetstone's.
"""
