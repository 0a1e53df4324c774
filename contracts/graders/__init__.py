"""OpenAI's graders, torch-free: definitions (`schema`), templates, a multi grader's formula,
the similarity metrics, model graders' requests, the Python sandbox, and `run.grade`."""
