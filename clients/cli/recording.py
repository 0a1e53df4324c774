"""Recording a model's behaviour: any OpenAI-compatible model answers a file of prompts, and
its answers become a chat training file (`whetstone record`, `whetstone migrate --distill`).

Each input line is a chat line (`messages`, and `tools` / `parallel_tool_calls` if it has
them; a preference line's `input` is read the same way). Its prompt is its messages without
a final assistant message: the line's own answer is replaced, earlier turns stay as context.
The output line is the prompt followed by the model's answer as the last assistant message,
with the line's `tools`; `contracts.formats` accepts it as a chat example.

Resuming without paying twice: the output file is its own journal. Each answer is appended
as one line the moment it arrives (in the order answers come, not the input's); a rerun reads
the output back, recognises each finished line by its prompt (messages before the last, plus
tools), and asks only the prompts not answered yet, a prompt given twice being asked twice.
A line cut short by a crash is dropped. Ctrl-C stops sending and keeps what is in flight.

Tokens are counted before anything is sent, as an estimate: the characters of the prompts'
message texts and tool definitions (as JSON) over 4, plus 4 per message (OpenAI's rule of
thumb for English text, and its per-message overhead; the source's tokenizer is not at hand).
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients.sdk import APIStatusError, Whetstone, WhetstoneError

EXTRA = ("tools", "parallel_tool_calls")
FATAL = (401, 403, 404)  # the key or the model is wrong: no other prompt would fare better
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


class PromptError(ValueError):
    """A line of the prompts file that holds no prompt; the message names it."""


@dataclass(frozen=True)
class Prompt:
    line: int  # 1-based, in the prompts file
    messages: list[Any]
    extra: dict[str, Any]

    @property
    def key(self) -> str:
        return prompt_key(self.messages, self.extra)

    def answered(self, message: dict[str, Any]) -> dict[str, Any]:
        """The training line: the prompt, then `message` as the last assistant message."""
        return {"messages": [*self.messages, message], **self.extra}


def prompt_key(messages: list[Any], extra: dict[str, Any]) -> str:
    text = json.dumps([messages, extra], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def prompt_of_line(data: Any, line: int) -> Prompt:
    """The prompt of one line of the prompts file; PromptError when it has none."""
    holder = data.get("input") if isinstance(data, dict) and "input" in data else data
    messages = holder.get("messages") if isinstance(holder, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise PromptError(f"line {line}: no `messages` list")
    if messages and messages[-1].get("role") == "assistant":
        messages = messages[:-1]
    if not any(m.get("role") == "user" for m in messages):
        raise PromptError(f"line {line}: no user message to answer")
    extra = {k: data[k] for k in EXTRA if isinstance(data, dict) and data.get(k) is not None}
    return Prompt(line, messages, extra)


def read_prompts(path: Path) -> list[Prompt]:
    prompts = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise PromptError(f"line {number}: invalid JSON ({exc})") from None
            prompts.append(prompt_of_line(data, number))
    return prompts


def recorded(output: Path) -> Counter[str]:
    """The prompts already answered in `output` (by key, with their counts). A last line
    without its newline (a crash while writing it) is cut off the file; PromptError, and the
    file left as it is, when `output` holds anything but chat lines."""
    done: Counter[str] = Counter()
    if not output.exists():
        return done
    data = output.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    for number, raw in enumerate(whole.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            extra = {k: line[k] for k in EXTRA if line.get(k) is not None}
            done[prompt_key(line["messages"][:-1], extra)] += 1
        except (ValueError, TypeError, KeyError, AttributeError):
            raise _foreign(output, number) from None
    if len(whole) != len(data):
        if not data[len(whole) :].lstrip().startswith(b"{"):
            raise _foreign(output, whole.count(b"\n") + 1)
        with output.open("r+b") as handle:
            handle.truncate(len(whole))
    return done


def _foreign(output: Path, number: int) -> PromptError:
    return PromptError(
        f"{output} line {number} is not a chat line: is it the output of an earlier run? "
        "(give another -o)"
    )


def still_to_ask(prompts: list[Prompt], done: Counter[str]) -> list[Prompt]:
    left, todo = Counter(done), []
    for prompt in prompts:
        if left[prompt.key] > 0:
            left[prompt.key] -= 1
        else:
            todo.append(prompt)
    return todo


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # text parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def estimate_tokens(prompts: list[Prompt]) -> int:
    """Characters of the messages' text and of the tool definitions (as JSON) over 4, plus 4
    per message."""
    chars = sum(
        sum(len(_text(m.get("content"))) for m in p.messages)
        + (len(json.dumps(p.extra["tools"])) if "tools" in p.extra else 0)
        for p in prompts
    )
    return chars // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * sum(len(p.messages) for p in prompts)


def answer_message(completion: Any) -> dict[str, Any]:
    """The assistant message of a completion, as a training line holds it."""
    if not completion.choices:
        raise WhetstoneError("the model answered no choice")
    said = completion.choices[0].message
    message: dict[str, Any] = {"role": "assistant", "content": said.content or ""}
    if said.tool_calls:
        message["tool_calls"] = [call.model_dump(exclude_none=True) for call in said.tool_calls]
    return message


@contextmanager
def _first_ctrl_c_sets(event: threading.Event) -> Iterator[None]:
    """While inside, the first Ctrl-C (SIGINT) sets `event` instead of raising
    KeyboardInterrupt wherever the main thread happens to be (between sending a request and
    noting it in flight, between writing an answer and counting it); the second one raises as
    usual. Signals are the main thread's: elsewhere this does nothing, nor where SIGINT is
    ignored."""
    previous = signal.getsignal(signal.SIGINT) or signal.default_int_handler
    if threading.current_thread() is not threading.main_thread() or previous == signal.SIG_IGN:
        yield  # elsewhere, or Ctrl-C ignored (nohup, a shell's background job): left as it is
        return

    def first(signum: int, frame: object) -> None:
        event.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class Outcome:
    answered: int = 0
    failed: list[str] = field(default_factory=list)  # "line N: why"
    stopped: bool = False  # Ctrl-C
    fatal: str | None = None  # a refusal that stopped everything (bad key, unknown model)


@dataclass
class Recorder:
    """Asks `model` each prompt, `concurrency` at a time, appending each answer to `output`
    as it comes. 429s and dropped connections are retried by the SDK client (`retry-after`
    honoured); a prompt refused for itself (400) is reported and left for a rerun."""

    source: Whetstone
    model: str
    output: Path
    concurrency: int = 4
    params: dict[str, Any] = field(default_factory=dict)
    on_answer: Callable[[Prompt], None] = lambda _: None

    def ask(self, prompt: Prompt) -> dict[str, Any]:
        completion = self.source.chat.completions.create(
            model=self.model, messages=prompt.messages, **prompt.extra, **self.params
        )
        return prompt.answered(answer_message(completion))

    def run(self, prompts: list[Prompt]) -> Outcome:
        """Ask every prompt. The first Ctrl-C stops sending: the answers in flight are still
        written (they are paid for), then the run ends `stopped`; a second Ctrl-C interrupts."""
        outcome = Outcome()
        self.output.parent.mkdir(parents=True, exist_ok=True)
        todo = iter(prompts)
        ctrl_c = threading.Event()
        with (
            self.output.open("ab") as out,
            ThreadPoolExecutor(self.concurrency) as pool,
            _first_ctrl_c_sets(ctrl_c),
        ):
            flying: dict[Future[dict[str, Any]], Prompt] = {}
            self._fill(pool, flying, todo, outcome)
            while flying:
                finished, _ = wait(flying, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._record(future, flying.pop(future), out, outcome)
                outcome.stopped = outcome.stopped or ctrl_c.is_set()  # before sending more
                if outcome.fatal is None:
                    self._fill(pool, flying, todo, outcome)
        return outcome

    def _fill(
        self,
        pool: ThreadPoolExecutor,
        flying: dict[Future[dict[str, Any]], Prompt],
        todo: Iterator[Prompt],
        outcome: Outcome,
    ) -> None:
        while len(flying) < self.concurrency and not outcome.stopped:
            prompt = next(todo, None)
            if prompt is None:
                return
            flying[pool.submit(self.ask, prompt)] = prompt

    def _record(
        self, future: Future[dict[str, Any]], prompt: Prompt, out: Any, outcome: Outcome
    ) -> None:
        try:
            line = future.result()
        except APIStatusError as exc:
            if exc.status_code in FATAL:
                outcome.fatal = f"{exc.status_code}: {exc.message}"
            outcome.failed.append(f"line {prompt.line}: {exc.status_code} {exc.message}")
            return
        except WhetstoneError as exc:
            outcome.failed.append(f"line {prompt.line}: {exc}")
            return
        out.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
        out.flush()
        outcome.answered += 1
        self.on_answer(prompt)
