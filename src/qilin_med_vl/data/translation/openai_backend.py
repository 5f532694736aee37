"""Backend `openai`: English→Chinese through any OpenAI-compatible POST {base_url}/chat/completions.

A batch (`submit_batch`, or `translate_batch`, which waits for it) runs its texts concurrently on an
asyncio loop the translator owns, in a thread of its own (so the caller may be sync code, a worker
thread or a notebook with its own running loop). Several batches may be in flight at once: they share
one bound of `concurrency` requests in flight, for the whole translator, and a text that an earlier
batch is still asking for is not asked again (the later batch waits for that answer). Everything the
translator does with the memory happens on that loop's thread. Per text:
1. the translation memory answers if it can (no request);
2. otherwise the model is asked; 429, 408, 409, 5xx, timeouts, connection errors and malformed bodies
   are retried with exponential backoff (jittered, `Retry-After` honoured, capped) up to `max_retries`
   times, then the text is dropped as `translation_request_failed` (not remembered: a later run asks again),
   unless no attempt got any HTTP answer at all: then the endpoint is unreachable, and once the batch's
   other requests are done (their answers remembered) the run stops with an error instead of building
   an empty dataset;
   400/413/422 drop the text as `translation_request_rejected`; 401, 403, 404 and other statuses stop the run
   with an error, since they mean the endpoint, key or model is wrong;
3. the answer goes through the quality checks; a failure is remembered (attempt 1) and the model is
   asked once more with the reason; a second failure is remembered (attempt 2) and drops the text with
   the reason of that second failure. A pass is remembered as the translation.
Every outcome is written to the memory the moment it is known, so a killed run resumes where it was,
including a pending retry: nothing the service already answered is asked again.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

import httpx

from qilin_med_vl.data.translation import reasons
from qilin_med_vl.data.translation.checks import CheckFailure, CheckThresholds, check_translation
from qilin_med_vl.data.translation.config import (
    DEFAULT_API_KEY_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    Translation,
    TranslatorConfig,
    needs_translation,
)
from qilin_med_vl.data.translation.glossary import Glossary
from qilin_med_vl.data.translation.memory import RecordedFailure, TranslationMemory
from qilin_med_vl.data.translation.prompt import translation_messages
from qilin_med_vl.errors import QilinError

RETRYABLE_STATUSES = frozenset({408, 409, 429})  # plus every 5xx
REJECTED_STATUSES = frozenset({400, 413, 422})  # this text cannot be sent; others still can
FINAL_ATTEMPT = 2  # a first answer, then one retry with the reason
UNREACHABLE = "endpoint_unreachable"  # internal: every attempt failed before an HTTP answer; stops the run


class TranslationServiceError(QilinError):
    """The chat endpoint answered in a way no retry can fix (wrong URL, key or model)."""


@dataclass
class TranslatorStats:
    """What one translator did, for the build's log."""

    memory_hits: int = 0
    requests: int = 0
    transient_retries: int = 0  # requests repeated after a 429/5xx/timeout
    check_retries: int = 0  # second attempts after a failed check
    translated: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason code -> texts


@dataclass(frozen=True)
class _Answer:
    content: str
    truncated: bool


def resolve_api_key(api_key_env: str | None) -> str:
    name = api_key_env or DEFAULT_API_KEY_ENV
    key = os.environ.get(name)
    if not key:
        raise QilinError(
            f"the environment variable {name} holding the translation API key is not set: "
            f"`export {name}=<key>` (any non-empty value for a local server that needs none), "
            "or name another variable with --api-key-env"
        )
    return key


class OpenAITranslator:
    def __init__(
        self, config: TranslatorConfig, memory: TranslationMemory, glossary: Glossary | None
    ) -> None:
        self.model = config.model or DEFAULT_MODEL
        self.prompt_version = config.prompt_version
        self.url = (config.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self.stats = TranslatorStats()
        self._config = config
        self._api_key = resolve_api_key(config.api_key_env)
        self._memory = memory
        self._glossary = glossary
        self._thresholds = CheckThresholds(
            min_chinese_share=config.min_chinese_share,
            min_length_ratio=config.min_length_ratio,
            max_length_ratio=config.max_length_ratio,
            length_check_min_chars=config.length_check_min_chars,
        )
        self._jitter = random.Random()
        # The bound on requests in flight is a set of `concurrency` clients of one connection each, for
        # every batch alike (a bound per batch would let two batches send twice as many). Not one client
        # of `concurrency` connections: httpx's pool checks each of its connections with system calls
        # on every request, which at 32 connections cost more CPU per request than the request itself.
        self._idle_clients: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        self._clients: list[httpx.AsyncClient] = []
        self._ssl_context = None  # made with the first client, shared by all (making one takes ~50 ms)
        self._asking: dict[str, asyncio.Task] = {}  # source text -> the task asking for it, while it runs
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="translator-loop", daemon=True
        )
        self._loop_thread.start()
        self._closed = False

    # --- the Translator protocol ---------------------------------------------------------------------
    def submit_batch(self, texts: Sequence[str]) -> Future[list[Translation]]:
        if self._closed:
            raise RuntimeError("submit_batch called on a closed translator")
        return asyncio.run_coroutine_threadsafe(self._translate_batch(list(texts)), self._loop)

    def translate_batch(self, texts: Sequence[str]) -> list[Translation]:
        future = self.submit_batch(texts)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # an interrupt here cancels the batch's requests
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join()
            self._loop.close()
            self._memory.close()

    async def _shutdown(self) -> None:
        # requests left running by an interrupted batch: cancel them (their answers were never received)
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        for client in self._clients:
            await client.aclose()

    # --- memory --------------------------------------------------------------------------------------
    def _known(self, source: str) -> Translation | None:
        """The outcome without a request: nothing to translate, a remembered translation or drop."""
        if not needs_translation(source):
            return Translation(source=source, text=source)
        target = self._memory.translation(self.model, self.prompt_version, source)
        if target is not None:
            self.stats.memory_hits += 1
            return Translation(source=source, text=target)
        failure = self._memory.failure(self.model, self.prompt_version, source)
        if failure is not None and failure.attempts >= FINAL_ATTEMPT and not self._config.retry_failed:
            self.stats.memory_hits += 1
            self.stats.dropped[failure.reason] += 1
            return Translation(source=source, text=None, reason=failure.reason)
        return None

    def _pending_retry(self, source: str) -> RecordedFailure | None:
        """A first answer that failed its check, remembered: only the retry with the reason is left to ask."""
        failure = self._memory.failure(self.model, self.prompt_version, source)
        return failure if failure is not None and failure.attempts == 1 else None

    # --- one batch -----------------------------------------------------------------------------------
    async def _translate_batch(self, texts: list[str]) -> list[Translation]:
        results: dict[str, Translation] = {}
        started: list[asyncio.Task] = []  # texts this batch asks for
        joined: list[asyncio.Task] = []  # texts an earlier batch still in flight is asking for
        for source in dict.fromkeys(texts):
            if source in self._asking:
                joined.append(self._asking[source])
                continue
            known = self._known(source)
            if known is not None:
                results[source] = known
            else:
                started.append(self._start(source))
        if started or joined:
            results.update(await self._answers(started, joined))
        return [results[text] for text in texts]

    def _start(self, source: str) -> asyncio.Task:
        task = asyncio.ensure_future(self._translate_one(source, self._pending_retry(source)))
        self._asking[source] = task
        task.add_done_callback(partial(self._forget, source))
        return task

    def _forget(self, source: str, task: asyncio.Task) -> None:
        if self._asking.get(source) is task:
            del self._asking[source]

    async def _answers(
        self, started: list[asyncio.Task], joined: list[asyncio.Task]
    ) -> dict[str, Translation]:
        # shielded: a batch that stops does not cancel what an earlier batch is asking for
        try:
            translations = await asyncio.gather(*started, *(asyncio.shield(task) for task in joined))
        except BaseException:
            # one text hit a fatal error (or the run was interrupted): stop the others, then re-raise
            for task in started:
                task.cancel()
            await asyncio.gather(*started, return_exceptions=True)
            raise
        unreachable = sum(translation.reason == UNREACHABLE for translation in translations)
        if unreachable:
            raise TranslationServiceError(
                f"cannot reach {self.url}: {unreachable} request(s) got no answer after "
                f"{self._config.max_retries} retries (connection refused or timed out). Check --base-url and "
                "that the server is up; the translations already received are kept in the translation memory, "
                "so rerunning the same command resumes without paying for them again"
            )
        return {translation.source: translation for translation in translations}

    async def _translate_one(self, source: str, prior: RecordedFailure | None) -> Translation:
        matches = self._glossary.matches(source) if self._glossary is not None else []
        if prior is None:
            answer = await self._ask(translation_messages(source, matches))
            if isinstance(answer, str):
                return self._drop(source, answer)
            failure = self._check(source, answer)
            if failure is None:
                return self._accept(source, answer.content)
            rejected_output = answer.content
            self._memory.record_failure(
                self.model, self.prompt_version, source, failure.reason, failure.detail, rejected_output, 1
            )
        else:
            failure = CheckFailure(prior.reason, prior.detail)
            rejected_output = prior.output

        self.stats.check_retries += 1
        answer = await self._ask(translation_messages(source, matches, rejected_output, failure))
        if isinstance(answer, str):
            return self._drop(source, answer)
        second_failure = self._check(source, answer)
        if second_failure is None:
            return self._accept(source, answer.content)
        self._memory.record_failure(
            self.model,
            self.prompt_version,
            source,
            second_failure.reason,
            second_failure.detail,
            answer.content,
            FINAL_ATTEMPT,
        )
        return self._drop(source, second_failure.reason)

    def _check(self, source: str, answer: _Answer) -> CheckFailure | None:
        if answer.truncated:
            return CheckFailure(reasons.OUTPUT_TRUNCATED, "finish_reason was length; answer more briefly")
        return check_translation(source, answer.content, self._thresholds, self._glossary)

    def _accept(self, source: str, text: str) -> Translation:
        self._memory.record_translation(self.model, self.prompt_version, source, text)
        self.stats.translated += 1
        return Translation(source=source, text=text)

    def _drop(self, source: str, reason: str) -> Translation:
        self.stats.dropped[reason] += 1
        return Translation(source=source, text=None, reason=reason)

    # --- one request, with transient retries ---------------------------------------------------------
    async def _ask(self, messages: list[dict[str, str]]) -> _Answer | str:
        """The model's answer, the drop reason when the service never gives one, or UNREACHABLE."""
        payload: dict = {"model": self.model, "messages": messages, "temperature": self._config.temperature}
        if self._config.max_tokens is not None:
            payload["max_tokens"] = self._config.max_tokens
        answered = False  # any HTTP response at all, even an error status
        for attempt in range(self._config.max_retries + 1):
            retry_after: float | None = None
            client = await self._take_client()
            self.stats.requests += 1
            try:
                response = await client.post(self.url, json=payload)
            except (httpx.TimeoutException, httpx.TransportError):
                response = None
            finally:
                self._idle_clients.put_nowait(client)
            if response is not None:
                answered = True
                if response.status_code == 200:
                    answer = _parse_answer(response)
                    if answer is not None:
                        return answer
                elif response.status_code in REJECTED_STATUSES:
                    return reasons.REQUEST_REJECTED
                elif response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
                    retry_after = _retry_after_seconds(response)
                else:
                    raise TranslationServiceError(
                        f"{self.url} answered HTTP {response.status_code} for model {self.model!r}: "
                        f"{response.text[:300]!r}. Check --base-url, --model and the key in "
                        f"{self._config.api_key_env or DEFAULT_API_KEY_ENV}"
                    )
            if attempt < self._config.max_retries:
                self.stats.transient_retries += 1
                await asyncio.sleep(self._backoff_seconds(attempt, retry_after))
        return reasons.REQUEST_FAILED if answered else UNREACHABLE

    async def _take_client(self) -> httpx.AsyncClient:
        """A client for one request: an idle one, a new one while fewer than `concurrency` exist, or the
        next one given back."""
        if self._idle_clients.empty() and len(self._clients) < self._config.concurrency:
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context()
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._config.timeout_s),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                headers={"Authorization": f"Bearer {self._api_key}"},
                verify=self._ssl_context,
            )
            self._clients.append(client)
            return client
        return await self._idle_clients.get()

    def _backoff_seconds(self, attempt: int, retry_after: float | None) -> float:
        delay = self._config.retry_backoff_s * (2**attempt) * self._jitter.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self._config.retry_backoff_max_s)


def _parse_answer(response: httpx.Response) -> _Answer | None:
    """choices[0].message.content and whether it was cut off; None for a body that is not an answer."""
    try:
        choice = response.json()["choices"][0]
        content = choice["message"].get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    if not isinstance(content, str):
        return None
    return _Answer(content=content.strip(), truncated=choice.get("finish_reason") == "length")


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
