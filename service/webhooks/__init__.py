"""Webhooks as OpenAI sends them: endpoints a project registers (`/v1/webhook_endpoints`:
`routes`, `schemas`, the rules in `endpoints` and `targets`), events when its jobs end, signed
per Standard Webhooks (`events`), delivered from an outbox in the database (`outbox`) by the
scheduler (`deliverer`); their SQL in `repository`."""
