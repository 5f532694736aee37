"""A fake OpenAI-compatible chat endpoint on 127.0.0.1 for evaluation tests: scripted answers per prompt.

A request's key is the text part of its user message (the task's prompt). `answers` maps a key to the
answer sent back (unlisted keys get `default_answer`); `failures` maps a key to HTTP statuses returned,
one per request, before its answer (429 comes with `Retry-After: 0`). `hold_after(n)` answers the next n
requests and leaves every later one waiting, unanswered, until `release()` or shutdown, so a test can
kill its client at a moment when exactly n answers were sent. The same server plays the LLM judge: its
requests are text only, keyed by the judge prompt, and answered with scripted verdict replies.

On the wire it is the translation fake's server (`LoopbackHTTPServer`, `EndpointHandler`: keep-alive,
TCP_NODELAY, a backlog of 128). Every request is logged with its key, model, Authorization header,
whether it carried a PNG image as a data: URL, and whether it was answered; the most requests served at
once is kept (`max_in_flight`).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from ..data.fake_openai_server import EndpointHandler, LoopbackHTTPServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_URL_PREFIX = "data:image/png;base64,"


@dataclass
class LoggedRequest:
    key: str
    model: str
    authorization: str | None
    image_is_png: bool
    temperature: float | None
    # the picture's distinct RGB colours, if at most 256 (None: no picture, e.g. a judge's question)
    image_colours: tuple | None = None
    answered: bool = False


class FakeVQAServer:
    def __init__(
        self,
        answers: dict[str, str] | None = None,
        failures: dict[str, list[int]] | None = None,
        default_answer: str = "no",
        latency_s: float = 0.0,
    ) -> None:
        self.answers = dict(answers or {})
        self.failures = {key: list(statuses) for key, statuses in (failures or {}).items()}
        self.default_answer = default_answer
        self.latency_s = latency_s
        self.requests: list[LoggedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests being served at one moment
        self._lock = threading.Lock()
        self._serve_before_hold: int | None = None
        self._released = threading.Event()
        self._httpd = LoopbackHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeVQAServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def hold_after(self, served: int) -> None:
        with self._lock:
            self._serve_before_hold = served
            self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._serve_before_hold = None
            self._released.set()

    # --- what tests read -----------------------------------------------------------------------------
    def requests_per_key(self) -> Counter:
        with self._lock:
            return Counter(request.key for request in self.requests)

    def answered_keys(self) -> list[str]:
        with self._lock:
            return [request.key for request in self.requests if request.answered]

    # --- serving -------------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.rstrip("/") != "/v1/chat/completions":
            self._send(handler, 404, {"error": {"message": "only /v1/chat/completions"}})
            return
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length", 0))))
        parts = body["messages"][-1]["content"]
        key = "".join(part["text"] for part in parts if part["type"] == "text")
        images = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
        png = bool(images) and images[0].startswith(DATA_URL_PREFIX)
        png = png and base64.b64decode(images[0][len(DATA_URL_PREFIX) :])[:8] == PNG_MAGIC
        colours = _colours(images[0][len(DATA_URL_PREFIX) :]) if png else None
        with self._lock:
            logged = LoggedRequest(
                key, body.get("model", ""), handler.headers.get("Authorization"), png, body.get("temperature"),
                colours,
            )  # fmt: skip
            self.requests.append(logged)
            held = self._serve_before_hold is not None and self._serve_before_hold <= 0
            if self._serve_before_hold is not None and not held:
                self._serve_before_hold -= 1
            statuses = self.failures.get(key)
            status = statuses.pop(0) if statuses else 200
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._serve(handler, body, key, logged, held, status)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _serve(self, handler, body: dict, key: str, logged: LoggedRequest, held: bool, status: int) -> None:
        if held:
            self._released.wait()  # never answered: the client is killed meanwhile
            return
        if self.latency_s:
            threading.Event().wait(self.latency_s)
        if status != 200:
            headers = {"Retry-After": "0"} if status == 429 else {}
            self._send(handler, status, {"error": {"message": f"scripted {status}"}}, headers)
            return
        answer = self.answers.get(key, self.default_answer)
        completion = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": body.get("model", ""),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
            ],
        }
        if self._send(handler, 200, completion):
            with self._lock:
                logged.answered = True

    @staticmethod
    def _send(handler, status: int, payload: dict, headers: dict | None = None) -> bool:
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


def _colours(encoded_png: str) -> tuple:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(encoded_png))) as picture:
        counts = picture.convert("RGB").getcolors(maxcolors=256) or []
    return tuple(sorted(colour for _, colour in counts))
