"""Webhooks as OpenAI sends them: endpoints a project registers, events when its jobs end,
signed per Standard Webhooks, delivered from an outbox in the database by the scheduler."""
