"""Graders on the service side: their settings (`settings`), what a request's graders may
reach (`reach`: models served here, the grading endpoint, the embedding model), and running
them for `/v1/fine_tuning/alpha/graders` (`routes`, `schemas`). The graders themselves are
`contracts.graders`."""
