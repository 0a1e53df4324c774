"""The scheduler: validates files with the tokenizer, claims queued jobs, watches leases; what
it does to a job (its file checks, its JobSpec, its reports) lives in `service.fine_tuning`.

`Scheduler.tick()` does one round; `Scheduler.run_forever(stop_event)` loops. It runs in the
API process (`whetstone up`) or alone (`python -m service.scheduler`, e.g. a Kubernetes
Deployment); any number of replicas may share one Postgres.
"""
