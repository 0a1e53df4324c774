"""A stand-in for OpenAI's API as `whetstone migrate` and `whetstone record` meet it, written
from OpenAI's spec (tests/data/openai/openai-openapi-subset.yaml), not from Whetstone:
OpenAI's ids (`ftjob-...`, `file-...`), model names (`gpt-4o-mini-2024-07-18`,
`ft:gpt-4o-mini-2024-07-18:{org}:{suffix}:{id}`), its list pagination (newest first, `after`
a job id, `limit` default 20, `has_more`), its error shape, and its bad days on cue: a 429
with `retry-after`, a connection dropped halfway through a body or before an answer.

Chat completions answer `source says: {last user message}`, so that each answer shows which
prompt it was asked; `chat_requests` holds every request that got an answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import free_port

KEY = "sk-proj-openai-stand-in"
BASE = "gpt-4o-mini-2024-07-18"


@dataclass
class OpenAISource:
    jobs: list[dict[str, Any]] = field(default_factory=list)  # newest first, as listed
    files: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)
    models: set[str] = field(default_factory=lambda: {BASE})
    # Bad days: each is used up as it happens.
    rate_limited: int = 0  # the next N requests answer 429 with `retry-after: 1`
    cut_content: set[str] = field(default_factory=set)  # these downloads stop halfway, once
    drop_chat: set[int] = field(default_factory=set)  # these chat requests (1-based) hang up
    hold_from: int | None = None  # chat requests from this one (1-based) wait for `release`
    release: threading.Event = field(default_factory=threading.Event)
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    chats_seen: int = 0
    rate_limited_sent: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_file(self, file_id: str, filename: str, data: bytes) -> str:
        self.files[file_id] = (
            {"id": file_id, "object": "file", "bytes": len(data), "created_at": 1735689600,
             "filename": filename, "purpose": "fine-tune", "status": "processed",
             "status_details": None},
            data,
        )  # fmt: skip
        return file_id

    def add_job(self, job_id: str, training_file: str, **fields: Any) -> dict[str, Any]:
        """A job as OpenAI reports it (`status` succeeded, `fine_tuned_model` given, unless
        `fields` say otherwise); the newest is listed first."""
        hyper = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}
        job = {
            "id": job_id, "object": "fine_tuning.job", "created_at": 1735689600 + len(self.jobs),
            "error": None, "fine_tuned_model": None, "finished_at": None,
            "hyperparameters": hyper, "model": BASE, "organization_id": "org-acme",
            "result_files": [], "seed": 42, "status": "succeeded", "trained_tokens": 1000,
            "training_file": training_file, "validation_file": None, "estimated_finish": None,
            "integrations": [], "metadata": None,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
            **fields,
        }  # fmt: skip
        if job["fine_tuned_model"]:
            self.models.add(job["fine_tuned_model"])
        self.jobs.insert(0, job)
        return job


def _error(status: int, message: str, code: str | None, kind: str) -> tuple[int, bytes]:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return status, json.dumps(body).encode()


def _answer(source: OpenAISource, request: dict[str, Any]) -> tuple[int, bytes]:
    model = request.get("model")
    if model not in source.models:
        return _error(404, f"The model `{model}` does not exist or you do not have access to "
                      "it.", "model_not_found", "invalid_request_error")  # fmt: skip
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    text = f"source says: {users[-1]['content'] if users else ''}"
    completion = {
        "id": f"chatcmpl-{len(source.chat_requests)}", "object": "chat.completion",
        "created": 1735689600, "model": model, "system_fingerprint": "fp_0123456789",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                     "refusal": None}, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }  # fmt: skip
    source.chat_requests.append(request)
    return 200, json.dumps(completion).encode()


def _list_jobs(source: OpenAISource, query: dict[str, list[str]]) -> bytes:
    jobs = source.jobs
    after = query.get("after", [None])[0]
    if after is not None:
        ids = [j["id"] for j in jobs]
        jobs = jobs[ids.index(after) + 1 :] if after in ids else []
    limit = int(query.get("limit", ["20"])[0])
    page = {"object": "list", "data": jobs[:limit], "has_more": len(jobs) > limit}
    return json.dumps(page).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    source: OpenAISource

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _refused(self) -> bool:
        """401 without OpenAI's key, 429 while `rate_limited` lasts."""
        src = self.source
        if self.headers.get("authorization") != f"Bearer {KEY}":
            self._send(*_error(401, "Incorrect API key provided.", "invalid_api_key",
                               "invalid_request_error"))  # fmt: skip
            return True
        with src.lock:
            limited = src.rate_limited > 0
            if limited:
                src.rate_limited -= 1
                src.rate_limited_sent += 1
        if limited:
            status, body = _error(429, "Rate limit reached for gpt-4o-mini in organization "
                                  "org-acme on requests per min (RPM): Limit 3, Used 3.",
                                  "rate_limit_exceeded", "requests")  # fmt: skip
            self._send(status, body, {"retry-after": "1"})
        return limited

    def do_GET(self) -> None:  # http.server's name
        if self._refused():
            return
        parts = urlsplit(self.path)
        path, query = parts.path.removeprefix("/v1"), parse_qs(parts.query)
        segments = path.strip("/").split("/")
        src = self.source
        if path == "/fine_tuning/jobs":
            self._send(200, _list_jobs(src, query))
        elif segments[:2] == ["fine_tuning", "jobs"] and len(segments) == 3:
            job = next((j for j in src.jobs if j["id"] == segments[2]), None)
            if job is None:
                self._send(*_error(404, f"Could not find fine tune: {segments[2]}",
                                   "fine_tune_not_found", "invalid_request_error"))  # fmt: skip
            else:
                self._send(200, json.dumps(job).encode())
        elif segments[0] == "files" and len(segments) in (2, 3) and segments[1] in src.files:
            meta, data = src.files[segments[1]]
            if len(segments) == 2:
                self._send(200, json.dumps(meta).encode())
            else:
                self._content(segments[1], data)
        else:
            self._send(*_error(404, f"Invalid URL (GET {path})", None, "invalid_request_error"))

    def _content(self, file_id: str, data: bytes) -> None:
        cut = file_id in self.source.cut_content
        self.source.cut_content.discard(file_id)
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if cut else data)
        self.close_connection = cut

    def do_POST(self) -> None:  # http.server's name
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self._refused():
            return
        if urlsplit(self.path).path != "/v1/chat/completions":
            self._send(*_error(404, "Invalid URL", None, "invalid_request_error"))
            return
        with self.source.lock:
            self.source.chats_seen += 1
            seen = self.source.chats_seen
        hold = self.source.hold_from
        if hold is not None and seen >= hold:
            self.source.release.wait(timeout=60)
        with self.source.lock:
            drop = seen in self.source.drop_chat
            if not drop:
                status, answer = _answer(self.source, json.loads(body))
        if drop:
            self.close_connection = True  # no answer at all: the caller sees the socket close
            return
        self._send(status, answer)


@contextmanager
def openai_source(source: OpenAISource) -> Iterator[OpenAISource]:
    """Serve `source` on a loopback port; `source.url` is its `/v1` root."""
    handler = type("Handler", (_Handler,), {"source": source})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    source.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield source
    finally:
        server.shutdown()
        server.server_close()
