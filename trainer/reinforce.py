"""A reinforcement job's steps inside `trainer.loop`: what `Run.rl` holds and does.

`trainer.loop` runs every method's steps, checkpoints, resume and stop requests; for a
reinforcement job (`method.type == "reinforcement"`) a step is `Reinforcement.gradients`:
draw `samples_per_prompt` completions of each of the step's `batch_size` prompts (prompt
after prompt; the samples of one are graded in a thread pool while the next one samples),
grade them, and run the GRPO loss of `trainer.grpo` backwards; the loop then clips and
steps the optimiser as for the other methods.

Metrics (`contracts.messages.StepMetrics`): `train_loss` (the step's loss, KL term included),
`train_reward_mean` (the mean reward of the step's samples, 0 for one whose grading failed),
for a `multi` grader `train_reward/<name>` (each sub-grader's mean reward); every
`eval_interval` steps with a validation file, `valid_reward_mean` (and `valid_reward/<name>`)
over `eval_samples` samples of each of its first `loop.EVAL_EXAMPLES` prompts.

Exact resume: the sampling generator's state and the reference (the parent adapter's weights
when continuing from a fine-tuned model) are in every checkpoint's resume state, beside the
RNG states, optimiser and data position the loop keeps; validation samples from a generator
seeded by the job's seed and the step, so it changes nothing a later step draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from contracts import layout
from contracts.chat import ChatTokenizer
from contracts.graders.run import Context
from contracts.graders.schema import GraderType, MultiGrader
from contracts.messages import StepMetrics
from contracts.spec import JobSpec, ReinforcementHyperparameters
from trainer.grading import (
    Grading,
    Rewards,
    check_not_all_failed,
    context,
    failure_summary,
    sum_up,
)
from trainer.grpo import (
    Prompt,
    Reference,
    Sampled,
    advantages,
    completion_text,
    policy_gradients,
    sample,
    stop_ids,
)
from trainer.progress import HttpChannel

VALIDATION_SEED = 1_000_003
"""Validation at step s samples from a generator seeded `(seed + 1) * VALIDATION_SEED + s`."""


def csv_columns(spec: JobSpec) -> tuple[str, ...]:
    """A reinforcement job's metrics CSV: `layout.REINFORCEMENT_METRICS_COLUMNS`, then
    `train_reward/<name>` and `valid_reward/<name>` per sub-grader of a `multi` grader."""
    keys = list(spec.method.grader.named()) if isinstance(spec.method.grader, MultiGrader) else []
    return (
        *layout.REINFORCEMENT_METRICS_COLUMNS,
        *(f"train_reward/{k}" for k in keys),
        *(f"valid_reward/{k}" for k in keys),
    )


@dataclass
class Reinforcement:
    """What a reinforcement run holds beside the loop's `Run`."""

    hp: ReinforcementHyperparameters
    grader: GraderType
    ctx: Context
    chat: ChatTokenizer
    stops: list[int]
    generator: torch.Generator
    reference: Reference | None  # None: kl_beta 0

    def state(self) -> dict[str, Any]:
        """For the checkpoint's resume state."""
        reference = self.reference.state() if self.reference is not None else None
        return {"reinforcement": {"generator": self.generator.get_state(), "reference": reference}}

    def gradients(self, run: Any, indices: list[int]) -> tuple[dict[str, float], int]:
        """Sample, grade and backpropagate the step's prompts `indices`: its `train_*`
        values (sub-rewards as `train_reward/<name>`) and the tokens it ran."""
        step = run.position.step + 1
        prompts: list[Prompt] = [run.train[i] for i in indices]
        n = self.hp.samples_per_prompt
        completions, rewards = self.draw(run, prompts, n, self.generator)
        check_not_all_failed(rewards, step)
        summary = failure_summary(rewards, f"Step {step}")
        if summary:
            run.progress.log(summary, "warn")
        samples = []
        for k, prompt in enumerate(prompts):
            group = rewards.rewards[k * n : (k + 1) * n]
            for completion, advantage in zip(completions[k], advantages(group), strict=True):
                samples.append(Sampled(prompt, completion, advantage))
        sums = policy_gradients(
            run.model, samples, self.reference, self.hp.kl_beta, run.pad_id,
            run.micro_batch_tokens, run.device,
        )  # fmt: skip
        values = {"train_loss": sums.loss, "train_reward_mean": rewards.mean}
        values.update({f"train_reward/{k}": v for k, v in rewards.sub_rewards.items()})
        return values, sums.tokens

    def draw(
        self, run: Any, prompts: list[Prompt], n: int, generator: torch.Generator
    ) -> tuple[list[list[list[int]]], Rewards]:
        """`n` completions of each prompt and their grades (graded while the next prompt
        samples)."""
        completions = []
        max_seq_len = run.spec.base_model.max_seq_len
        with Grading(self.grader, self.ctx) as grading:
            for prompt in prompts:
                room = min(self.hp.max_completion_tokens, max_seq_len - len(prompt))
                group = sample(
                    run.model, prompt, n, generator, self.hp.temperature, room, self.stops,
                    run.pad_id, run.device,
                )  # fmt: skip
                for completion in group:
                    grading.submit(completion_text(self.chat, completion), prompt.item)
                completions.append(group)
            grades = grading.results()
        return completions, sum_up(self.grader, grades)

    def validate(self, run: Any, step: int) -> Rewards:
        """Rewards of `eval_samples` samples of each validation prompt (the first
        `EVAL_EXAMPLES`), from a generator of this step's own."""
        from trainer.loop import EVAL_EXAMPLES

        generator = torch.Generator(device=run.device)
        generator.manual_seed((run.spec.seed + 1) * VALIDATION_SEED + step)
        _, rewards = self.draw(run, run.valid[:EVAL_EXAMPLES], self.hp.eval_samples, generator)
        summary = failure_summary(rewards, f"Validation at step {step}")
        if summary:
            run.progress.log(summary, "warn")
        return rewards

    def step_metrics(self, run: Any, values: dict[str, float]) -> StepMetrics:
        """The step's metrics, with a validation run every `eval_interval` steps."""
        step = run.position.step
        subs = {k: v for k, v in values.items() if k.startswith("train_reward/")}
        valid_mean = None
        if run.valid and step % self.hp.eval_interval == 0:
            valid = self.validate(run, step)
            valid_mean = valid.mean
            subs.update({f"valid_reward/{k}": v for k, v in valid.sub_rewards.items()})
        return StepMetrics(
            train_loss=values["train_loss"], train_reward_mean=values["train_reward_mean"],
            valid_reward_mean=valid_mean, sub_rewards=subs or None,
        )  # fmt: skip


def start(run: Any, chat: ChatTokenizer, state: dict[str, Any] | None) -> Reinforcement:
    """A run's reinforcement state: fresh (the generator seeded from the job's seed, the
    reference taken from the model as loaded), or as a checkpoint's resume state left it."""
    spec: JobSpec = run.spec
    hp, grader = spec.method.reinforcement, spec.method.grader
    assert hp is not None and grader is not None
    generator = torch.Generator(device=run.device)
    reference: Reference | None = None
    if state is not None:
        saved = state["reinforcement"]
        generator.set_state(saved["generator"])
        if saved["reference"] is not None:
            reference = Reference.from_state(saved["reference"])
    else:
        generator.manual_seed(spec.seed)
        if hp.kl_beta > 0:
            reference = Reference.of(run.model, continued=spec.init_adapter is not None)
    channel = run.progress.channel
    report_url = channel.url if isinstance(channel, HttpChannel) else None
    token = channel.token if isinstance(channel, HttpChannel) else None
    stops = stop_ids(chat, run.model)
    return Reinforcement(
        hp, grader, context(spec, report_url, token), chat, stops, generator, reference
    )
