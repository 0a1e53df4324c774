"""Moved to `service.schemas.params`. The fine-tuning routes (`service.api.fine_tuning`,
being changed in parallel) still import it from here; this re-export goes when they move
into their slice."""

from service.schemas.params import After, Limit

__all__ = ["After", "Limit"]
