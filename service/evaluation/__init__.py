"""The evaluation report of a succeeded job: examples (`examples`; the held-out lines are
`contracts.holdout`'s), greedy answers from vLLM (`answers`), scores (`scoring`) and the report
(`report`). The scheduler's worker (`service.scheduler.evaluation`) runs it."""
