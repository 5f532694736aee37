"""Backend for an OpenAI-compatible chat endpoint (vLLM, `qilin serve`, a GPT-4V-class API).

Each question becomes one POST {endpoint}/chat/completions with temperature 0: a user message holding
the picture as a base64 `data:image/png` URL and the prompt text. Up to `concurrency` requests are in
flight at once (async httpx); answers are reported as they arrive, so the runner records each at once.
429, 408, 409, 5xx, timeouts, connection errors and malformed bodies are retried with exponential
backoff (jittered, `Retry-After` honoured, capped) up to `max_retries` times; after that the run stops
with an error and a rerun resumes it. 400/413/422 mean this one request cannot be served (too large, a
content filter): the item is recorded with an empty answer and the reason. Any other status (401, 403,
404...) stops the run: the URL, key or model name is wrong.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

from qilin_med_vl.errors import QilinError
from qilin_med_vl.eval.backend import AnswerCallback, Question, load_picture

RETRYABLE_STATUSES = frozenset({408, 409, 429})  # plus every 5xx
REFUSED_STATUSES = frozenset({400, 413, 422})  # this request cannot be served; the others still can
DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_RETRIES = 5
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_BACKOFF_S = 1.0
DEFAULT_BACKOFF_MAX_S = 60.0


class EndpointError(QilinError):
    """The endpoint failed in a way retrying this run cannot fix, or gave no answer after every retry."""


@dataclass(frozen=True)
class EndpointSettings:
    endpoint: str  # base URL, e.g. http://localhost:8000/v1
    model: str
    max_new_tokens: int
    api_key_env: str | None = None  # None: send no Authorization header (a local server)
    concurrency: int = DEFAULT_CONCURRENCY
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout_s: float = DEFAULT_TIMEOUT_S
    backoff_s: float = DEFAULT_BACKOFF_S
    backoff_max_s: float = DEFAULT_BACKOFF_MAX_S

    @property
    def url(self) -> str:
        return self.endpoint.rstrip("/") + "/chat/completions"


class EndpointBackend:
    def __init__(self, settings: EndpointSettings) -> None:
        if settings.concurrency < 1:
            raise QilinError(f"--concurrency must be at least 1, got {settings.concurrency}")
        self.settings = settings
        self._headers = {}
        if settings.api_key_env:
            key = os.environ.get(settings.api_key_env)
            if not key:
                raise QilinError(
                    f"--api-key-env {settings.api_key_env}: that environment variable is not set; "
                    f"`export {settings.api_key_env}=<key>`, or leave out --api-key-env for a server without keys"
                )
            self._headers["Authorization"] = f"Bearer {key}"
        self._jitter = random.Random()

    def identity(self) -> dict:
        return {
            "kind": "endpoint",
            "endpoint": self.settings.endpoint.rstrip("/"),
            "model": self.settings.model,
        }

    def answer(self, questions: Sequence[Question], on_answer: AnswerCallback) -> None:
        asyncio.run(self._answer_all(questions, on_answer))

    def close(self) -> None:
        pass

    async def _answer_all(self, questions: Sequence[Question], on_answer: AnswerCallback) -> None:
        import httpx

        in_flight = asyncio.Semaphore(self.settings.concurrency)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout_s),
            limits=httpx.Limits(max_connections=self.settings.concurrency),
            headers=self._headers,
        ) as client:
            tasks = [
                asyncio.ensure_future(self._answer_one(client, position, question, in_flight))
                for position, question in enumerate(questions)
            ]
            try:
                for finished in asyncio.as_completed(tasks):
                    position, text, refusal = await finished
                    on_answer(position, text, refusal)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _answer_one(
        self, client, position: int, question: Question, in_flight: asyncio.Semaphore
    ) -> tuple[int, str, str | None]:
        import httpx

        payload = None
        problem = ""
        for attempt in range(self.settings.max_retries + 1):
            retry_after = None
            async with in_flight:
                if payload is None:  # encoded here, so at most `concurrency` pictures wait in memory
                    payload = {
                        "model": self.settings.model,
                        "messages": [
                            {"role": "user", "content": await asyncio.to_thread(_content, question)}
                        ],
                        "temperature": 0,
                        "max_tokens": self.settings.max_new_tokens,
                    }
                try:
                    response = await client.post(self.settings.url, json=payload)
                except (httpx.TimeoutException, httpx.TransportError) as error:
                    response, problem = None, f"{type(error).__name__}: {error}"
            if response is not None:
                status = response.status_code
                if status == 200:
                    text = _answer_text(response)
                    if text is not None:
                        return position, text, None
                    problem = f"HTTP 200 with a body that is not a chat completion: {response.text[:200]!r}"
                elif status in REFUSED_STATUSES:
                    return position, "", f"HTTP {status}: {response.text[:300]}"
                elif status in RETRYABLE_STATUSES or status >= 500:
                    problem = f"HTTP {status}: {response.text[:200]}"
                    retry_after = _retry_after_seconds(response)
                else:
                    raise EndpointError(
                        f"{self.settings.url} answered HTTP {status} for model {self.settings.model!r}: "
                        f"{response.text[:300]!r}. Check --endpoint, --model and the key named by --api-key-env"
                    )
            if attempt < self.settings.max_retries:
                await asyncio.sleep(self._backoff_seconds(attempt, retry_after))
        raise EndpointError(
            f"{self.settings.url} gave no answer for question {question.prompt[:60]!r} after "
            f"{self.settings.max_retries} retries (last: {problem}); answers so far are saved, "
            "rerun the same command to resume"
        )

    def _backoff_seconds(self, attempt: int, retry_after: float | None) -> float:
        delay = self.settings.backoff_s * (2**attempt) * self._jitter.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.settings.backoff_max_s)


def _content(question: Question) -> list[dict]:
    parts: list[dict] = []
    if question.image is not None:
        buffer = io.BytesIO()
        load_picture(question.image, question.blank).save(
            buffer, format="PNG"
        )  # lossless, whatever the source format
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": url}})
    parts.append({"type": "text", "text": question.prompt})
    return parts


def _answer_text(response) -> str | None:
    """choices[0].message.content, stripped; None for a body that is not a chat completion."""
    try:
        content = response.json()["choices"][0]["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return content.strip() if isinstance(content, str) else None


def _retry_after_seconds(response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: our own backoff applies
