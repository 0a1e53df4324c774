"""The wire shapes every resource shares: lists and errors (`common`), the list endpoints'
query parameters (`params`). Each resource's own schemas are in its domain folder
(`schemas.py`, `*_schemas.py`), named as OpenAI names them."""
