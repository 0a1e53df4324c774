"""Whetstone's clients: the Python SDK (`clients.sdk`) and the `whetstone` CLI (`clients.cli`).

Depends on httpx, pydantic, typer and rich. Of Whetstone's own code it imports one module,
`contracts.formats` (the dataset line formats, standard library only), so that files are
checked locally with exactly the server's rules; `contracts` ships in the same distribution.
"""
