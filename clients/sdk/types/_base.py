"""The base of every API object: same field names as the API, extra fields kept."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class APIObject(BaseModel):
    """An object returned by the API. Fields the SDK does not know are kept, not refused."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
