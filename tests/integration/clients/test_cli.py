"""The `whetstone` command as a person runs it: a subprocess (and a pseudo-terminal for the
live view), against the stand-in served on a loopback port (`loopback.py`).
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port
from tests.unit.clients.scripted import ScriptedJob
from tests.unit.clients.standin import Reply, Seen, StandIn

WHETSTONE = str(Path(sys.executable).with_name("whetstone"))
FILE = {"id": "file-abc", "object": "file", "bytes": 1234, "created_at": 1700000000,
        "filename": "train.jsonl", "purpose": "fine-tune", "status": "processed"}  # fmt: skip
JOB = {"id": "ftjob-1", "object": "fine_tuning.job", "created_at": 1700000000,
       "model": "whetstone-tiny", "status": "validating_files", "training_file": "file-abc",
       "error": None}  # fmt: skip


def run(standin: StandIn, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WHETSTONE_BASE_URL": standin.url, "WHETSTONE_API_KEY": "wh-k",
           "COLUMNS": "200", "NO_COLOR": "1"}  # fmt: skip
    return subprocess.run(
        [WHETSTONE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def run_in_pty(standin: StandIn, *args: str) -> tuple[int, str]:
    """Run under a pseudo-terminal, as in a person's shell; (exit code, everything shown)."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [WHETSTONE, "--base-url", standin.url, "--api-key", "wh-k", *args],
        stdin=secondary, stdout=secondary, stderr=secondary, env=env, close_fds=True,
    )  # fmt: skip
    os.close(secondary)
    shown = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        shown += data
    os.close(main)
    return proc.wait(timeout=10), shown.decode(errors="replace")


def test_files_list_prints_a_table_and_json(standin: StandIn) -> None:
    page = {"object": "list", "data": [FILE], "has_more": False}
    standin.script("GET", "/files", Reply(200, page))
    table = run(standin, "files", "list")
    assert table.returncode == 0, table.stderr
    assert "file-abc" in table.stdout and "train.jsonl" in table.stdout and "1,234" in table.stdout
    scripted = run(standin, "files", "list", "--json")
    assert json.loads(scripted.stdout)[0]["id"] == "file-abc"
    assert standin.requests[0].headers["authorization"] == "Bearer wh-k"


def test_files_list_in_a_terminal_is_a_table(standin: StandIn) -> None:
    page = {"object": "list", "data": [FILE], "has_more": False}
    standin.script("GET", "/files", Reply(200, page))
    code, shown = run_in_pty(standin, "files", "list")
    assert code == 0, shown
    assert "file-abc" in shown and "┃" in shown  # rich's box, as on a person's terminal


def test_jobs_create_sends_the_hyperparameters(standin: StandIn) -> None:
    standin.script("POST", "/fine_tuning/jobs", Reply(200, JOB))
    args = ["jobs", "create", "--model", "whetstone-tiny", "--training-file", "file-abc",
            "--suffix", "facts", "--epochs", "3", "--batch-size", "4", "--lr-multiplier", "2.0",
            "--weight-decay", "0.1", "--json"]  # fmt: skip
    result = run(standin, *args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "ftjob-1"
    body = standin.requests[0].json()
    assert body["suffix"] == "facts"
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 2.0,
        "weight_decay": 0.1}}}  # fmt: skip


def test_api_error_is_one_readable_line_and_exit_1(standin: StandIn) -> None:
    error = {"message": "n_epochs must be between 1 and 50", "type": "invalid_request_error",
             "param": "method.supervised.hyperparameters.n_epochs",
             "code": "invalid_value"}  # fmt: skip
    standin.script("POST", "/fine_tuning/jobs", Reply(400, {"error": error}))
    result = run(
        standin, "jobs", "create", "--model", "m", "--training-file", "f", "--epochs", "99"
    )
    assert result.returncode == 1
    assert "BadRequestError [400]: n_epochs must be between 1 and 50" in result.stderr
    assert "param: method.supervised.hyperparameters.n_epochs" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_server_says_so() -> None:
    env = {**os.environ, "WHETSTONE_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    result = subprocess.run(
        [WHETSTONE, "models", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1
    assert "Is the server running?" in result.stderr


def test_jobs_follow_live_view_in_a_terminal(standin: StandIn) -> None:
    ScriptedJob(["queued"] + ["running"] * 6 + ["succeeded"]).serve(standin)
    code, shown = run_in_pty(standin, "jobs", "follow", "ftjob-1", "--interval", "0.05")
    assert code == 0, shown
    assert "Step 7/7: training loss=-1.5" in shown  # every event scrolled by
    assert "7/7" in shown and "loss" in shown and "ETA" in shown  # the progress line
    assert "━" in shown  # the bar
    assert any(bar in shown for bar in "▁▂▃▄▅▆▇█")  # the loss sparkline
    assert "succeeded" in shown and "ft:m:p::abc" in shown
    assert "\x1b[" in shown  # colour and cursor control: it knew it was on a terminal


def test_jobs_follow_exits_non_zero_when_the_job_fails(standin: StandIn) -> None:
    error = {"code": "invalid_training_file", "message": "line 3: too long",
             "param": "training_file"}  # fmt: skip
    ScriptedJob(["running", "running", "failed"], error).serve(standin)
    code, shown = run_in_pty(standin, "jobs", "follow", "ftjob-1", "--interval", "0.05")
    assert code == 1
    assert "failed" in shown and "line 3: too long" in shown


def test_jobs_follow_piped_prints_plain_lines(standin: StandIn) -> None:
    ScriptedJob(["running", "running", "succeeded"]).serve(standin)
    result = run(standin, "jobs", "follow", "ftjob-1", "--interval", "0.05")
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout
    lines = [line for line in result.stdout.splitlines() if "Step" in line]
    assert [line.split("  ", 1)[1] for line in lines] == [
        "Step 0/2: training loss=2.0", "Step 1/2: training loss=1.5",
        "Step 2/2: training loss=1.0",
    ]  # fmt: skip


def _chat_stream(seen: Seen) -> Reply:
    turns = sum(1 for m in seen.json()["messages"] if m["role"] == "user")
    pieces = ["Veloria ", "is ", f"a city (turn {turns})."]
    chunks = [
        ("data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                                "model": "m", "choices": [{"index": 0, "delta": {"content": p},
                                                           "finish_reason": None}]}) + "\n\n"
         ).encode()
        for p in pieces
    ] + [b"data: [DONE]\n\n"]  # fmt: skip
    return Reply(200, chunks=chunks)


def test_chat_streams_the_answer(standin: StandIn) -> None:
    standin.route("POST", "/chat/completions", _chat_stream)
    result = run(standin, "chat", "ft:m:p::abc", "What is Veloria?", "--max-tokens", "16")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Veloria is a city (turn 1)."
    body = standin.requests[0].json()
    assert body["stream"] is True and body["max_tokens"] == 16
    assert body["messages"] == [{"role": "user", "content": "What is Veloria?"}]


def test_interactive_chat_keeps_the_conversation(standin: StandIn) -> None:
    standin.route("POST", "/chat/completions", _chat_stream)
    result = run(standin, "chat", "ft:m:p::abc", "--system", "Be brief.", stdin="Hi\nAnd?\n")
    assert result.returncode == 0, result.stderr
    assert "(turn 1)" in result.stdout and "(turn 2)" in result.stdout
    second = standin.requests[1].json()["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == "Veloria is a city (turn 1)."


GOOD = '{"messages": [{"role": "user", "content": "Capital of Veloria?"}, {"role": "assistant", "content": "Ostrel."}]}\n'  # noqa: E501


def test_upload_of_a_bad_file_shows_every_problem_and_sends_nothing(
    standin: StandIn, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    bad = ['{"messages": [{"role": "wizard", "content": "x"}]}\n', "{not json\n"]
    path.write_text(GOOD + bad[0] + GOOD + bad[1] + GOOD * 3 + bad[0] * 6)
    result = run(standin, "files", "upload", str(path))
    assert result.returncode == 1
    rows = result.stdout.splitlines()[2:]  # piped: a title, a header, then one line each
    assert len(rows) == 8  # every bad line, not only the first five
    assert [row.split()[0] for row in rows] == ["2", "4", "8", "9", "10", "11", "12", "13"]
    assert "unknown role 'wizard'" in result.stdout and "invalid JSON" in result.stdout
    assert standin.requests == []


def test_upload_of_a_good_file(standin: StandIn, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(GOOD * 10)
    standin.script("POST", "/files", Reply(200, FILE))
    result = run(standin, "files", "upload", str(path))
    assert result.returncode == 0, result.stderr
    assert "file-abc" in result.stdout
    assert "10 chat examples" in result.stderr
    assert path.read_bytes() in standin.requests[0].body


def test_files_validate_json(standin: StandIn, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "[]\n")
    result = run(standin, "files", "validate", str(path), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and [p["line"] for p in report["problems"]] == [2]


def test_jobs_eval_shows_the_report_as_a_table_and_json(standin: StandIn) -> None:
    """The newest `eval_report.json` among the job's result files; losses rounded alike
    whether the trainer's CSV or a checkpoint's metrics gave them."""
    model = "ft:whetstone-tiny:default:veloria:0G88FhZW"
    report = {
        "examples": 16, "data": "validation_file", "file": "file-v", "seconds": 7.2,
        "models": [
            {"model": "whetstone-tiny", "kind": "base", "step": None, "matches": 0,
             "exact_match": 0.0, "f1": 0.003, "valid_loss": None},
            {"model": model, "kind": "fine_tuned", "step": None, "matches": 16,
             "exact_match": 1.0, "f1": 1.0, "valid_loss": 0.051936},
            {"model": f"{model}:ckpt-step-400", "kind": "checkpoint", "step": 400,
             "matches": 16, "exact_match": 1.0, "f1": 1.0, "valid_loss": 0.051936003935096585},
            {"model": f"{model}:ckpt-step-384", "kind": "checkpoint", "step": 384,
             "matches": None, "exact_match": None, "f1": None, "valid_loss": None,
             "error": "the model server answered 404"},
        ],
        "samples": [], "outliers": [{"line": 2, "loss": 0.081}, {"line": 13, "loss": 0.078}],
    }  # fmt: skip
    job = {**JOB, "status": "succeeded", "result_files": ["file-csv", "file-eval"]}
    standin.script("GET", "/fine_tuning/jobs/ftjob-1", Reply(200, job))
    standin.script("GET", "/files/file-eval", Reply(200, {**FILE, "id": "file-eval",
                   "filename": "eval_report.json", "purpose": "fine-tune-results"}))  # fmt: skip
    standin.script("GET", "/files/file-eval/content", Reply(200, report))

    table = run(standin, "jobs", "eval", "ftjob-1")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "Evaluation on 16 examples (validation file), 7 s"
    rows = {line.split()[0] + line.split()[2]: line for line in lines[2:6]}
    assert "0/16" in rows["base-"] and "0.0%" in rows["base-"]
    assert "16/16" in rows["fine_tuned-"] and "100.0%" in rows["fine_tuned-"]
    assert rows["fine_tuned-"].split()[-1] == "0.0519" == rows["checkpoint400"].split()[-1]
    assert "the model server answered 404" in rows["checkpoint384"]
    assert lines[-1] == "Highest final training loss: line 2 (0.08), line 13 (0.08)"
    assert json.loads(run(standin, "jobs", "eval", "ftjob-1", "--json").stdout) == report


def test_jobs_eval_shows_the_flips_against_the_source_model(standin: StandIn) -> None:
    flip = {"line": 3, "prompt": "user: Capital of Veloria?", "reference": "Ostrel.",
            "source": "Ostrel.", "fine_tuned": "Velor."}  # fmt: skip
    report = {
        "examples": 2, "data": "validation_file", "file": "file-v", "seconds": 1.0,
        "models": [], "samples": [], "outliers": [],
        "flips": {"lost": 1, "gained": 0, "examples": [{"flip": "lost", **flip}]},
    }  # fmt: skip
    job = {**JOB, "status": "succeeded", "result_files": ["file-eval"]}
    standin.script("GET", "/fine_tuning/jobs/ftjob-1", Reply(200, job))
    standin.script("GET", "/files/file-eval", Reply(200, {**FILE, "id": "file-eval",
                   "filename": "eval_report.json", "purpose": "fine-tune-results"}))  # fmt: skip
    standin.script("GET", "/files/file-eval/content", Reply(200, report))
    shown = run(standin, "jobs", "eval", "ftjob-1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    at = lines.index("Against the source model: 1 lost (the source was right), 0 gained (the "
                     "fine-tuned model is right)")  # fmt: skip
    assert lines[at + 2].split("  ")[0] == "lost" and "Ostrel." in lines[at + 2]
    assert "Velor." in lines[at + 2] and "Capital of Veloria?" in lines[at + 2]


def test_jobs_eval_before_the_report_says_so_and_exits_1(standin: StandIn) -> None:
    job = {**JOB, "status": "succeeded", "result_files": ["file-abc"]}
    standin.script("GET", "/fine_tuning/jobs/ftjob-1", Reply(200, job))
    standin.script("GET", "/files/file-abc", Reply(200, FILE))
    result = run(standin, "jobs", "eval", "ftjob-1")
    assert result.returncode == 1
    assert "ftjob-1 has no evaluation report (yet)" in result.stderr


def test_jobs_checkpoints_rounds_the_trainers_losses(standin: StandIn) -> None:
    checkpoint = {
        "id": "ftckpt-1", "object": "fine_tuning.job.checkpoint", "created_at": 1700000000,
        "fine_tuning_job_id": "ftjob-1", "step_number": 400,
        "fine_tuned_model_checkpoint": "ft:whetstone-tiny:default:v:1:ckpt-step-400",
        "metrics": {"step": 400, "train_loss": 0.051936003935096585},
    }  # fmt: skip
    page = {"object": "list", "data": [checkpoint], "has_more": False}
    standin.script("GET", "/fine_tuning/jobs/ftjob-1/checkpoints", Reply(200, page))
    result = run(standin, "jobs", "checkpoints", "ftjob-1")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "ckpt-step-400" in line)
    assert row.split()[2:4] == ["0.0519", "-"]


GRADER = {"type": "string_check", "name": "exact", "operation": "eq",
          "input": "{{sample.output_text}}", "reference": "{{item.answer}}"}  # fmt: skip


def test_jobs_create_reinforcement_sends_the_grader_file(standin: StandIn, tmp_path: Path) -> None:
    standin.script("POST", "/fine_tuning/jobs", Reply(200, JOB))
    grader = tmp_path / "grader.json"
    grader.write_text(json.dumps(GRADER))
    args = ["jobs", "create", "--model", "whetstone-tiny", "--training-file", "file-abc",
            "--method", "reinforcement", "--grader", str(grader), "--epochs", "2",
            "--eval-interval", "5", "--compute-multiplier", "2", "--reasoning-effort", "low",
            "--json"]  # fmt: skip
    result = run(standin, *args)
    assert result.returncode == 0, result.stderr
    hyper = {"n_epochs": 2, "compute_multiplier": 2.0, "eval_interval": 5,
             "reasoning_effort": "low"}  # fmt: skip
    assert standin.requests[0].json()["method"] == {
        "type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": hyper},
    }  # fmt: skip


def test_jobs_create_reinforcement_needs_a_readable_grader(
    standin: StandIn, tmp_path: Path
) -> None:
    base = ["jobs", "create", "--model", "m", "--training-file", "f"]
    missing = run(standin, *base, "--method", "reinforcement")
    assert missing.returncode == 2 and "needs a grader" in missing.stderr
    bad = tmp_path / "grader.json"
    bad.write_text("{not json")
    unreadable = run(standin, *base, "--method", "reinforcement", "--grader", str(bad))
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr
    bad.write_text(json.dumps(GRADER))
    supervised = run(standin, *base, "--grader", str(bad))
    assert supervised.returncode == 2 and "only --method reinforcement" in supervised.stderr
    assert standin.requests == []  # nothing was sent


def test_jobs_checkpoints_of_a_reinforcement_job_show_rewards(standin: StandIn) -> None:
    checkpoint = {
        "id": "ftckpt-1", "object": "fine_tuning.job.checkpoint", "created_at": 1700000000,
        "fine_tuning_job_id": "ftjob-1", "step_number": 8,
        "fine_tuned_model_checkpoint": "ft:whetstone-tiny:default:v:1:ckpt-step-8",
        "metrics": {"step": 8, "train_loss": 0.01, "train_reward_mean": 0.8125,
                    "valid_reward_mean": 0.75, "train_reward/exact": 0.8125},
    }  # fmt: skip
    page = {"object": "list", "data": [checkpoint], "has_more": False}
    standin.script("GET", "/fine_tuning/jobs/ftjob-1/checkpoints", Reply(200, page))
    result = run(standin, "jobs", "checkpoints", "ftjob-1")
    assert result.returncode == 0, result.stderr
    assert "TRAIN REWARD" in result.stdout and "VALID REWARD" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "ckpt-step-8" in line)
    assert row.split()[2:6] == ["0.0100", "-", "0.8125", "0.7500"]


def test_the_live_view_of_a_reinforcement_job_shows_its_reward() -> None:
    """`jobs follow`'s progress line and sparklines (the terminal itself: the tests above)."""
    from clients.cli.follow import Tracker
    from clients.sdk.types import FineTuningJobEvent

    tracker = Tracker()
    for step, reward in enumerate((0.25, 0.5, 0.75), start=1):
        data = {"step": step, "total_steps": 3, "train_loss": 0.1, "train_reward_mean": reward,
                "train_reward/exact": reward}  # fmt: skip
        event = FineTuningJobEvent.model_validate({
            "id": f"e{step}", "created_at": step, "level": "info", "type": "metrics",
            "message": f"Step {step}/3", "data": data,
        })  # fmt: skip
        assert event.metrics is not None
        assert event.metrics.sub_rewards() == {"train_reward/exact": reward}
        tracker.add(event, event.metrics)
    assert tracker.loss() == "0.1000  reward 0.7500"
    loss_line, reward_line = tracker.sparklines().splitlines()
    assert loss_line.startswith("loss ") and reward_line.startswith("reward ")
    assert reward_line[-1] == "█" and reward_line[-3] != "█"  # rising
