"""Asking an OpenAI-compatible chat endpoint for many answers at once, with the translator's retry policy.

At most `concurrency` requests are in flight. 429, 408, 409, 5xx, timeouts, connection errors and bodies
that are not a chat completion are retried with jittered exponential backoff (at least the server's
`Retry-After`, at most `retry_backoff_max_s`) up to `max_retries` times; 400/413/422 refuse that one
source; 401, 403, 404 and other statuses stop the run (`TranslationServiceError`), as they mean the
endpoint, key or model is wrong. Each answer is handed to `on_answer` the moment it arrives, so the
caller can store it before the next one comes in.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from qilin_med_vl.data.converse import reasons
from qilin_med_vl.data.converse.config import ConverseConfig
from qilin_med_vl.data.converse.memory import ChatAnswer
from qilin_med_vl.data.translation.openai_backend import (
    REJECTED_STATUSES,
    RETRYABLE_STATUSES,
    TranslationServiceError,
)
from qilin_med_vl.errors import QilinError

UNREACHABLE = "endpoint_unreachable"  # internal: no attempt got an HTTP answer; stops the run


@dataclass
class RequestCounts:
    requests: int = 0  # HTTP requests sent, retries included
    answers: int = 0  # chat completions received (paid)
    retries: int = 0


def _parse(response: httpx.Response) -> ChatAnswer | None:
    try:
        body = response.json()
        choice = body["choices"][0]
        content = choice["message"].get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    if not isinstance(content, str):
        return None
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return ChatAnswer(
        content=content.strip(),
        truncated=choice.get("finish_reason") == "length",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def _retry_after(response: httpx.Response) -> float | None:
    try:
        value = response.headers.get("retry-after")
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def api_key(variable: str) -> str:
    key = os.environ.get(variable)
    if not key:
        raise QilinError(
            f"the environment variable {variable} holding the conversation endpoint's API key is not set: "
            f"`export {variable}=<key>` (any non-empty value for a local server that needs none), or name "
            "another variable with --api-key-env"
        )
    return key


class ChatClient:
    def __init__(self, config: ConverseConfig) -> None:
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self.counts = RequestCounts()
        self._api_key = api_key(config.api_key_env)
        self._jitter = random.Random()

    def ask_all(
        self,
        requests: list[tuple[str, list[dict[str, str]]]],
        on_answer: Callable[[str, ChatAnswer], None],
    ) -> dict[str, ChatAnswer | str]:
        """key -> answer, or the drop reason when the service never gave one; `on_answer(key, answer)` first."""
        return asyncio.run(self._ask_all(requests, on_answer))

    async def _ask_all(self, requests, on_answer) -> dict[str, ChatAnswer | str]:
        in_flight = asyncio.Semaphore(self.config.concurrency)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(self.config.timeout_s),
            limits=httpx.Limits(max_connections=self.config.concurrency),
            headers={"Authorization": f"Bearer {self._api_key}"},
        ) as client:

            async def one(key: str, messages: list[dict[str, str]]) -> ChatAnswer | str:
                result = await self._ask(client, messages, in_flight)
                if isinstance(result, ChatAnswer):
                    on_answer(key, result)
                return result

            tasks = [asyncio.ensure_future(one(key, messages)) for key, messages in requests]
            try:
                results = await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        unreachable = sum(result == UNREACHABLE for result in results)
        if unreachable:
            raise TranslationServiceError(
                f"cannot reach {self.url}: {unreachable} request(s) got no answer after "
                f"{self.config.max_retries} retries (connection refused or timed out). Check --base-url and "
                "that the server is up; the answers already received are kept in the conversation memory, "
                "so rerunning the same command resumes without paying for them again"
            )
        return {key: result for (key, _), result in zip(requests, results, strict=True)}

    async def _ask(self, client: httpx.AsyncClient, messages, in_flight) -> ChatAnswer | str:
        payload: dict = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
        }
        if self.config.max_tokens is not None:
            payload["max_tokens"] = self.config.max_tokens
        answered = False
        for attempt in range(self.config.max_retries + 1):
            retry_after: float | None = None
            async with in_flight:
                self.counts.requests += 1
                try:
                    response = await client.post(self.url, json=payload)
                except (httpx.TimeoutException, httpx.TransportError):
                    response = None
            if response is not None:
                answered = True
                if response.status_code == 200:
                    answer = _parse(response)
                    if answer is not None:
                        self.counts.answers += 1
                        return answer
                elif response.status_code in REJECTED_STATUSES:
                    return reasons.REQUEST_REJECTED
                elif response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
                    retry_after = _retry_after(response)
                else:
                    raise TranslationServiceError(
                        f"{self.url} answered HTTP {response.status_code} for model {self.config.model!r}: "
                        f"{response.text[:300]!r}. Check --base-url, --model and the key in "
                        f"{self.config.api_key_env}"
                    )
            if attempt < self.config.max_retries:
                self.counts.retries += 1
                delay = self.config.retry_backoff_s * (2**attempt) * self._jitter.uniform(0.5, 1.0)
                if retry_after is not None:
                    delay = max(delay, retry_after)
                await asyncio.sleep(min(delay, self.config.retry_backoff_max_s))
        return reasons.REQUEST_FAILED if answered else UNREACHABLE
