"""Fine-tuning jobs: `/v1/fine_tuning/jobs` and its events and checkpoints (`routes`,
`schemas`), the trainer's progress and grader channel (`internal_routes`), creating a job
(`create`), its hyperparameters and their `auto` rules (`hyperparameters`,
`auto_hyperparameters`), the state machine (`status`), the domain functions the API and the
scheduler call (`service`, `attempts`), the checks of its files (`validation`), the JobSpec
built from it (`spec`), the trainer's reports (`progress`), its results CSV (`results`), and
its SQL (`repository`). None of them commits: the request or the scheduler's task does. The
scheduler (`service/scheduler/`) keeps the loop, claiming and leases, and calls these."""
