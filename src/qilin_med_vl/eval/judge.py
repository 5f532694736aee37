"""The optional LLM judge of open answers: its settings, what run.json records of it, and the pass that asks it.

After the model's answers are recorded, every answered OPEN item that was not refused and has no verdict
yet is sent to the judge, an OpenAI-compatible endpoint asked through `EndpointBackend` (same retries,
concurrency and errors), as a text-only question holding the prompt of `judge_prompt`. Each reply is
recorded the moment it arrives by appending the item's record again to predictions.jsonl, with the
verdict in `details.judge` (1.0, 0.0, or None when the reply holds no verdict word or the endpoint
refused the request) and the reply in `judge_reply`. Readers keep each id's last line, so a killed run
keeps every verdict written and a rerun asks the judge only about items still without one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from qilin_med_vl.errors import DataError, QilinError
from qilin_med_vl.eval.backend import Question
from qilin_med_vl.eval.endpoint_backend import (
    DEFAULT_BACKOFF_S,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    EndpointBackend,
    EndpointSettings,
)
from qilin_med_vl.eval.items import OPEN, EvalItem
from qilin_med_vl.eval.judge_prompt import (
    JUDGE_LANGUAGES,
    judge_prompt,
    judge_templates,
    judge_version,
    parse_verdict,
)

JUDGE_MAX_TOKENS = 32  # the judge must reply with one word; room for a short lead-in such as "Answer:"
JUDGE_DETAIL = "judge"  # the key of the verdict in a record's details
JUDGE_REPLY = "judge_reply"  # the record field holding the judge's raw reply
JUDGE_ERROR = "judge_error"  # the record field holding why the judge endpoint refused the request


@dataclass(frozen=True)
class JudgeSettings:
    endpoint: str  # base URL, e.g. http://localhost:8001/v1
    model: str
    api_key_env: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout_s: float = DEFAULT_TIMEOUT_S
    backoff_s: float = DEFAULT_BACKOFF_S

    def endpoint_settings(self) -> EndpointSettings:
        return EndpointSettings(
            endpoint=self.endpoint,
            model=self.model,
            max_new_tokens=JUDGE_MAX_TOKENS,
            api_key_env=self.api_key_env,
            concurrency=self.concurrency,
            max_retries=self.max_retries,
            timeout_s=self.timeout_s,
            backoff_s=self.backoff_s,
        )


def judge_record(settings: JudgeSettings) -> dict:
    """run.json's `judge`: who judged and with which prompt. Verdicts of two different records never mix."""
    return {
        "endpoint": settings.endpoint.rstrip("/"),
        "model": settings.model,
        "prompt_version": judge_version(),
        "template": judge_templates(),
        "max_tokens": JUDGE_MAX_TOKENS,
    }


def needs_verdict(record: dict) -> bool:
    """An answered open item the endpoint did not refuse, not yet judged."""
    return (
        record.get("answer_type") == OPEN
        and not record.get("error")
        and JUDGE_DETAIL not in (record.get("details") or {})
    )


def judged_record(record: dict, reply: str, refusal: str | None) -> dict:
    """`record` with the judge's verdict on it (None for a reply without a verdict word, or a refusal)."""
    judged = {
        **record,
        "details": {**(record.get("details") or {}), JUDGE_DETAIL: parse_verdict(reply)},
        JUDGE_REPLY: reply,
    }
    if refusal is not None:
        judged[JUDGE_ERROR] = refusal
    return judged


class Judge:
    """Asks the judge endpoint about open answers; the API key is checked when it is made."""

    def __init__(self, settings: JudgeSettings) -> None:
        if settings.api_key_env and not os.environ.get(settings.api_key_env):
            raise QilinError(
                f"--judge-api-key-env {settings.api_key_env}: that environment variable is not set; "
                f"`export {settings.api_key_env}=<key>`, or leave out --judge-api-key-env for a judge "
                "server without keys"
            )
        self.settings = settings
        self.backend = EndpointBackend(settings.endpoint_settings())

    def record(self) -> dict:
        return judge_record(self.settings)

    @staticmethod
    def check_languages(items: Sequence[EvalItem]) -> None:
        """Refuse, before anything is asked, open items in a language the judge prompt has no template for."""
        for item in items:
            if item.answer_type == OPEN and item.language not in JUDGE_LANGUAGES:
                raise DataError(
                    f"item {item.id!r}: language {item.language!r} has no judge prompt (there are "
                    f"{', '.join(JUDGE_LANGUAGES)}); leave out --judge-endpoint and --judge-model for this task"
                )

    def judge(
        self,
        items_by_id: Mapping[str, EvalItem],
        pending: Sequence[dict],
        write: Callable[[dict], None],
        batch_size: int,
        progress: bool = True,
    ) -> None:
        """Ask about every record of `pending`, handing each judged record to `write` as its reply arrives."""
        from tqdm import tqdm

        bar = tqdm(total=len(pending), desc="judge", unit="item", disable=None if progress else True)
        try:
            for start in range(0, len(pending), batch_size):
                batch = pending[start : start + batch_size]

                def record_verdict(position: int, reply: str, refusal: str | None, batch=batch) -> None:
                    write(judged_record(batch[position], reply, refusal))
                    bar.update(1)

                questions = [
                    Question(judge_prompt(items_by_id[record["id"]], record["prediction"]), None)
                    for record in batch
                ]
                self.backend.answer(questions, record_verdict)
        finally:
            bar.close()
            self.backend.close()


def check_judge(out_name: str, previous: dict | None, current: dict | None) -> dict | None:
    """The judge record a resumed run keeps: the folder's own when no judge is given now; the given one
    when the folder has none; refused when both exist and differ, since their verdicts would mix."""
    if current is None or previous is None:
        return previous if current is None else current
    if previous != current:
        differences = [
            "template: the prompt text differs" if key == "template" else
            f"{key}: {previous.get(key)!r} here, {current.get(key)!r} now"
            for key in sorted(set(previous) | set(current))
            if previous.get(key) != current.get(key)
        ]  # fmt: skip
        raise QilinError(
            f"--out {out_name} holds verdicts of another judge; it differs in\n  "
            + "\n  ".join(differences)
            + "\nrerun with that folder's judge options, leave out the --judge-* options to keep its "
            "verdicts, or evaluate into another --out for a new judge"
        )
    return current
