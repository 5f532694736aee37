"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 for translation tests.

It "translates" deterministically: glossary terms named in the system prompt become their Chinese, every
other English word becomes two CJK characters chosen from a hash of the word, numbers and "number unit"
quantities stay as they are. That answer passes the project's quality checks. Per source text (the first
user message) a script lists behaviours consumed one per request; when the list is used up, `default`:
- "ok": the translation above;
- "english": the source text back, untranslated;
- "drop_numbers": the translation with every digit removed;
- "429" / "500" / "401" / "400": that HTTP status (429 with `Retry-After: 0`);
- "timeout": sleep `timeout_sleep_s` before answering (longer than the client's timeout);
- "malformed": HTTP 200 with a body that is not a chat completion.
`hold_after(n)` serves the next n requests and makes every later one wait until `release()` (or shutdown)
and then close unanswered, so a test can kill a client at a moment when every answered request is
recorded by the client and no other request was paid for.

On the wire it behaves as the servers in front of real models do: HTTP/1.1 keep-alive, Nagle's
algorithm off (TCP_NODELAY), a listen backlog of 128. Every request is logged (`requests`), with
whether a 200 translation was sent for it (`answered`) and when it arrived and was answered, and the
largest number of requests in flight at once is kept (`max_in_flight`). Every 200 answer reports `usage`
(`usage_of`: a token per 4 characters, at least one), as a paying endpoint does.

Subclasses answer other tasks: they extend `behaviours` and override `content` (fake_converse_server.py).

Run alone for manual tries: `python tests/data/fake_openai_server.py [--script script.json]` prints the
base URL, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOURS = ("ok", "english", "drop_numbers", "429", "500", "401", "400", "timeout", "malformed")
_GLOSSARY_LINE = re.compile(r"^- (?P<english>[^:\n]+): (?P<chinese>\S+)$", re.MULTILINE)
_TOKEN = re.compile(
    r"(?P<quantity>\d+(?:\.\d+)?\s?(?:mg/kg|mg/dL|mmHg|mg|kg|mL|mm|cm|°C|%)(?![A-Za-z]))"
    r"|(?P<number>\d+(?:\.\d+)?)|(?P<word>[A-Za-z]+)|(?P<other>\S)"
)


@dataclass
class LoggedRequest:
    source: str
    messages: list
    model: str
    authorization: str | None
    behaviour: str
    answered: bool = False  # a 200 translation was written back
    usage: dict | None = None  # the `usage` of the answer sent
    arrived_at: float = 0.0  # time.monotonic() when the request was read
    answered_at: float | None = None  # time.monotonic() when its 200 answer was written

    @property
    def is_retry(self) -> bool:
        return len(self.messages) > 2


def fake_chinese(source: str, system_prompt: str = "") -> str:
    """The deterministic 'translation' described in the module docstring."""
    glossary = {
        m.group("english").lower(): m.group("chinese") for m in _GLOSSARY_LINE.finditer(system_prompt)
    }
    text = source
    for english, chinese in sorted(glossary.items(), key=lambda item: -len(item[0])):
        text = re.sub(rf"(?i)\b{re.escape(english)}\b", chinese, text)
    pieces = []
    for match in _TOKEN.finditer(text):
        if match.group("word"):
            code = zlib.crc32(match.group("word").lower().encode())
            pieces.append(chr(0x4E00 + code % 2000) + chr(0x4E00 + (code >> 11) % 2000))
        else:
            pieces.append(match.group(0))
    return "".join(pieces)


def usage_of(prompt: str, completion: str) -> dict:
    """The token counts the fake reports: one token per 4 characters, at least one."""
    prompt_tokens, completion_tokens = max(1, len(prompt) // 4), max(1, len(completion) // 4)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class LoopbackHTTPServer(ThreadingHTTPServer):
    """The test suite's fake endpoints' server: a thread per connection, a listen backlog of 128."""

    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when a client opens dozens at once; real
    # servers queue hundreds (uvicorn 2048, nginx 511)
    request_queue_size = 128


class EndpointHandler(BaseHTTPRequestHandler):
    """The fake endpoints' request handler base: on the wire as the servers in front of real models."""

    protocol_version = "HTTP/1.1"  # keep-alive
    # TCP_NODELAY: with Nagle's algorithm, the body of each answer, written after its headers, waits for
    # the client's delayed ACK, ~40 ms
    disable_nagle_algorithm = True

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass  # keep test output quiet


class FakeChatServer:
    behaviours: tuple[str, ...] = BEHAVIOURS

    def __init__(
        self,
        script: dict[str, list[str]] | None = None,
        default: str = "ok",
        latency_s: float = 0.0,
        timeout_sleep_s: float = 2.0,
    ) -> None:
        for behaviour in [default, *(b for steps in (script or {}).values() for b in steps)]:
            if behaviour not in self.behaviours:
                raise ValueError(f"unknown behaviour {behaviour!r}; one of {self.behaviours}")
        self.script = {source: list(steps) for source, steps in (script or {}).items()}
        self.default = default
        self.latency_s = latency_s
        self.timeout_sleep_s = timeout_sleep_s
        self.requests: list[LoggedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._serve_before_hold: int | None = None  # requests still served before holding starts
        self._released = threading.Event()
        self._httpd = LoopbackHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def hold_after(self, served: int) -> None:
        with self._lock:
            self._serve_before_hold = served
            self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._serve_before_hold = None
            self._released.set()

    # --- what the tests read -------------------------------------------------------------------------
    def answered_count(self) -> int:
        with self._lock:
            return sum(request.answered for request in self.requests)

    def requests_per_source(self) -> Counter:
        with self._lock:
            return Counter(request.source for request in self.requests)

    def answers_per_source(self) -> Counter:
        with self._lock:
            return Counter(request.source for request in self.requests if request.answered)

    def requests_for(self, source: str) -> list[LoggedRequest]:
        with self._lock:
            return [request for request in self.requests if request.source == source]

    # --- serving -------------------------------------------------------------------------------------
    def _next_behaviour(self, source: str) -> str:
        steps = self.script.get(source)
        return steps.pop(0) if steps else self.default

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.rstrip("/") != "/v1/chat/completions":
            handler.send_error(404, "only /v1/chat/completions")
            return
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length", 0))))
        messages = body["messages"]
        source = next(message["content"] for message in messages if message["role"] == "user")
        system = next((message["content"] for message in messages if message["role"] == "system"), "")
        with self._lock:
            behaviour = self._next_behaviour(source)
            logged = LoggedRequest(
                source, messages, body.get("model", ""), handler.headers.get("Authorization"), behaviour,
                arrived_at=time.monotonic(),
            )  # fmt: skip
            self.requests.append(logged)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            held = self._serve_before_hold is not None and self._serve_before_hold <= 0
            if self._serve_before_hold is not None and not held:
                self._serve_before_hold -= 1
        try:
            if held:
                # a held request is never answered: its client is usually killed meanwhile, and a write
                # into a dead client's socket can still "succeed", which would log a payment never made
                self._released.wait()
                return
            time.sleep(self.latency_s)
            if behaviour == "timeout":
                time.sleep(self.timeout_sleep_s)
                return  # the client gave up long ago; answering would only hit a closed socket
            if behaviour in ("429", "500", "401", "400"):
                headers = {"Retry-After": "0"} if behaviour == "429" else {}
                self._send(handler, int(behaviour), {"error": {"message": f"scripted {behaviour}"}}, headers)
                return
            if behaviour == "malformed":
                self._send(handler, 200, {"unexpected": True})
                return
            content = self.content(behaviour, source, system)
            usage = usage_of(system + source, content)
            completion = {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
            if self._send(handler, 200, completion):
                with self._lock:
                    logged.answered = True
                    logged.usage = usage
                    logged.answered_at = time.monotonic()
        finally:
            with self._lock:
                self.in_flight -= 1

    def content(self, behaviour: str, source: str, system: str) -> str:
        """The text of a 200 answer (every behaviour that is not an error status, a timeout or malformed)."""
        if behaviour == "english":
            return source
        if behaviour == "drop_numbers":
            return re.sub(r"\d", "", fake_chinese(source, system))
        return fake_chinese(source, system)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, payload: dict, headers: dict | None = None
    ) -> bool:
        data = json.dumps(payload, ensure_ascii=False).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _handler_class(self):
        server = self

        class Handler(EndpointHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                server._handle(self)

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", help="JSON file {source text: [behaviour, ...]}")
    parser.add_argument("--default", default="ok", choices=BEHAVIOURS)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    script = json.load(open(args.script, encoding="utf-8")) if args.script else None
    with FakeChatServer(script, default=args.default, latency_s=args.latency) as server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
