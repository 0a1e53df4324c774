"""Graders on the service side: their settings, what a request's graders may reach (models
served here, the grading endpoint, the embedding model), and running them for
`/v1/fine_tuning/alpha/graders` (`service/api/graders.py`). The graders themselves are
`contracts.graders`."""
