"""Typed API objects, named and shaped as the API (and the `openai` package) names them."""

from __future__ import annotations

from .chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    CompletionUsage,
)
from .files import FileDeleted, FileObject
from .fine_tuning import (
    FINAL_STATUSES,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    Hyperparameters,
    Method,
    Metrics,
)
from .models import Model, ModelAlias, ModelAliasDeleted, ModelDeleted
from .webhooks import WebhookEndpoint, WebhookEndpointDeleted, WebhookEndpointWithSecret

__all__ = [
    "FINAL_STATUSES",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "CompletionUsage",
    "FileDeleted",
    "FileObject",
    "FineTuningJob",
    "FineTuningJobCheckpoint",
    "FineTuningJobEvent",
    "Hyperparameters",
    "Method",
    "Metrics",
    "Model",
    "ModelAlias",
    "ModelAliasDeleted",
    "ModelDeleted",
    "WebhookEndpoint",
    "WebhookEndpointDeleted",
    "WebhookEndpointWithSecret",
]
