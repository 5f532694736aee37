"""`qilin data converse`: multi-turn Chinese conversations about a build's figures, added to the build.

For each figure (figures.py) the model is asked once (prompt.py) unless the conversation memory
(memory.py) already holds its answer; every round's answer goes through the grounding checks
(grounding.py), a failing round is dropped with its reason, and a conversation left with fewer than
`min_rounds` rounds is dropped. Figures are handled `batch_size` at a time: their missing answers are
requested concurrently (client.py) and stored as they arrive, then their records are written.

Output, beside the build's own files:

    BUILD/conversation-00000-of-00001.jsonl          LLaVA multi-turn records (stage 2)
    BUILD/conversation-dropped-00000-of-00001.jsonl  {"id", "source", "ref", "round"?, "reason", "detail"}
    BUILD/conversation_memory.sqlite                 every paid answer with its token counts

and manifest.json lists the conversation file among the `instruction` files (so training, stats and
`built_files(folder, "instruction")` read it with no other change), again under `conversation`, and its
counts, tokens and cost under `conversation`. Files are written under a `.partial` name and renamed at
the end; the same command over the same build resumes, and the same answers give identical files.
The figures' texts are read into memory first (a case report's records lie in two stage files), a few
hundred bytes per figure. A rebuild (`qilin data build`) writes a new manifest without the conversations:
run converse again, which the memory answers without a request for every figure whose text did not change.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from qilin_med_vl.data.converse import reasons
from qilin_med_vl.data.converse.client import ChatClient, RequestCounts
from qilin_med_vl.data.converse.config import (
    CONVERSATION_MEMORY_FILE,
    ConverseConfig,
    validate_converse_config,
)
from qilin_med_vl.data.converse.figures import Figure, read_figures
from qilin_med_vl.data.converse.grounding import GlossaryIndex, SourceFacts, check_answer
from qilin_med_vl.data.converse.memory import ChatAnswer, ConversationMemory
from qilin_med_vl.data.converse.prompt import conversation_messages, memory_prompt_version, parse_rounds
from qilin_med_vl.data.translation.glossary import load_configured_glossary
from qilin_med_vl.llava_format import (
    CONVERSATION,
    IMAGE_TOKEN,
    INSTRUCTION,
    MANIFEST_FILE,
    make_record,
    read_manifest,
    shard_file_name,
)

SUFFIX = "00000-of-00001"  # one file for the whole build, whatever its number of shards
CONVERSATION_FILE = shard_file_name(CONVERSATION, SUFFIX)
DROPPED_FILE = shard_file_name(f"{CONVERSATION}-dropped", SUFFIX)
DROPPED_KEY = f"{CONVERSATION}_dropped"  # manifest `files` key of the drop log


@dataclass
class Outcome:
    """The fate of one figure: a record, or a drop reason; and the rounds dropped on the way."""

    record: dict | None = None
    reason: str | None = None
    detail: str = ""
    dropped_rounds: list[dict] = field(default_factory=list)  # {"round", "reason", "detail"}


def compose_conversation(
    figure: Figure,
    answer: ChatAnswer,
    glossary: GlossaryIndex | None,
    config: ConverseConfig,
    prompt_version: str,
) -> Outcome:
    """The conversation record of one figure from the model's answer, every round checked."""
    if answer.truncated:
        return Outcome(reason=reasons.TRUNCATED, detail="finish_reason was length; raise max_tokens")
    rounds = parse_rounds(answer.content)
    if rounds is None:
        return Outcome(reason=reasons.UNPARSEABLE, detail=f"answer starts {answer.content[:80]!r}")
    facts = SourceFacts.of(figure.source_text(), glossary)
    kept: list[tuple[str, str]] = []
    dropped: list[dict] = []
    for number, (question, reply) in enumerate(rounds, start=1):
        if number > config.max_rounds:
            failure_reason, detail = reasons.ROUND_OVER_LIMIT, f"round {number} of {len(rounds)}"
        else:
            failure = check_answer(reply, facts, glossary)
            if failure is None:
                kept.append((question, reply))
                continue
            failure_reason, detail = failure.reason, failure.detail
        dropped.append({"round": number, "reason": failure_reason, "detail": detail})
    if len(kept) < config.min_rounds:
        return Outcome(
            reason=reasons.TOO_FEW_ROUNDS,
            detail=f"{len(kept)} of {len(rounds)} rounds passed the grounding checks; {config.min_rounds} needed",
            dropped_rounds=dropped,
        )
    turns = []
    for index, (question, reply) in enumerate(kept):
        turns += [("user", f"{IMAGE_TOKEN}\n{question}" if index == 0 else question), ("assistant", reply)]
    meta = {
        "source": figure.source,
        "stage": INSTRUCTION,
        "ref": figure.ref,
        "kind": CONVERSATION,
        "from": figure.record_ids,
        "rounds": len(kept),
        "model": config.model,
        "prompt_version": prompt_version,
        "dropped_rounds": dropped,
    }
    return Outcome(
        record=make_record(figure.conversation_id, figure.image, turns, meta), dropped_rounds=dropped
    )


def load_converse_glossary(config: ConverseConfig, manifest: dict) -> GlossaryIndex | None:
    """The glossary the answers are held to: the settings', else the build translator's; None if neither."""
    translator = (manifest.get("config") or {}).get("translator") or {}
    csv_path = config.glossary_csv or translator.get("glossary_csv")
    use_cmekg = config.use_cmekg if config.use_cmekg is not None else bool(translator.get("use_cmekg"))
    glossary = load_configured_glossary(csv_path, use_cmekg)
    return GlossaryIndex(glossary) if glossary is not None else None


def _batched(figures: list[Figure], size: int) -> Iterator[list[Figure]]:
    iterator = iter(figures)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass
class ConverseResult:
    summary: dict  # what manifest.json holds under `conversation`
    this_run: RequestCounts  # requests sent by this run (0 when the memory answered everything)
    memory_hits: int = 0


class Conversations:
    """One converse run over one build folder; `run()` writes the files of the module docstring."""

    def __init__(self, folder: Path, config: ConverseConfig, limit: int | None = None, progress: bool = True):
        validate_converse_config(config)
        self.folder = folder
        self.config = config
        self.limit = limit
        self.progress = progress
        self.prompt_version = memory_prompt_version(
            config.prompt_version, config.min_rounds, config.max_rounds
        )
        self._client: ChatClient | None = None  # made at the first request: a fully cached run needs no key

    def run(self) -> ConverseResult:
        from tqdm import tqdm

        manifest = read_manifest(self.folder)
        glossary = load_converse_glossary(self.config, manifest)
        figures = read_figures(self.folder, self.config.sources)[: self.limit]
        memory = ConversationMemory(self.config.cache_path or self.folder / CONVERSATION_MEMORY_FILE)
        paths = {name: self.folder / name for name in (CONVERSATION_FILE, DROPPED_FILE)}
        partial = {name: path.with_name(path.name + ".partial") for name, path in paths.items()}
        handles = {name: open(partial[name], "w", encoding="utf-8", newline="\n") for name in paths}
        counts = {"kept": 0, "dropped": Counter(), "rounds": Counter(), "rounds_dropped": Counter()}
        used: dict[str, ChatAnswer] = {}  # source text -> the answer its conversation was made from
        memory_hits = 0
        bar = tqdm(
            desc="converse", unit=" figures", total=len(figures), disable=not self.progress, file=sys.stderr
        )
        completed = False
        try:
            for batch in _batched(figures, self.config.batch_size):
                answers, hits = self._answers(batch, memory)
                memory_hits += hits
                for figure in batch:
                    text = figure.source_text()
                    answer = answers[text]
                    if isinstance(answer, ChatAnswer):
                        used[text] = answer
                        outcome = compose_conversation(
                            figure, answer, glossary, self.config, self.prompt_version
                        )
                    else:
                        outcome = Outcome(reason=answer, detail=reasons.REASON_DESCRIPTIONS[answer])
                    self._write(figure, outcome, handles, counts)
                bar.update(len(batch))
            completed = True
        finally:
            bar.close()
            for handle in handles.values():
                handle.close()
            memory.close()
            if not completed:  # what was paid for is in the memory; the half-written files are of no use
                for path in partial.values():
                    path.unlink(missing_ok=True)
        for name, path in paths.items():
            os.replace(partial[name], path)
        summary = self._summary(len(figures), counts, used)
        self._update_manifest(summary)
        this_run = self._client.counts if self._client is not None else RequestCounts()
        return ConverseResult(summary=summary, this_run=this_run, memory_hits=memory_hits)

    def _answers(self, batch: list[Figure], memory: ConversationMemory) -> tuple[dict, int]:
        """source text -> stored or new answer (or a drop reason), and how many the memory gave."""
        answers: dict[str, ChatAnswer | str] = {}
        missing: list[tuple[str, list[dict[str, str]]]] = []
        for text in dict.fromkeys(figure.source_text() for figure in batch):
            stored = memory.answer(self.config.model, self.prompt_version, text)
            if stored is not None:
                answers[text] = stored
            else:
                messages = conversation_messages(text, self.config.min_rounds, self.config.max_rounds)
                missing.append((text, messages))
        if missing:
            if self._client is None:
                self._client = ChatClient(self.config)
            answers.update(
                self._client.ask_all(
                    missing,
                    lambda text, answer: memory.record(self.config.model, self.prompt_version, text, answer),
                )
            )
        return answers, len(answers) - len(missing)

    @staticmethod
    def _write(figure: Figure, outcome: Outcome, handles: dict, counts: dict) -> None:
        base = {"id": figure.conversation_id, "source": figure.source, "ref": figure.ref}
        for dropped in outcome.dropped_rounds:
            counts["rounds_dropped"][dropped["reason"]] += 1
            handles[DROPPED_FILE].write(json.dumps({**base, **dropped}, ensure_ascii=False) + "\n")
        if outcome.record is not None:
            counts["kept"] += 1
            counts["rounds"][outcome.record["meta"]["rounds"]] += 1
            handles[CONVERSATION_FILE].write(json.dumps(outcome.record, ensure_ascii=False) + "\n")
        else:
            counts["dropped"][outcome.reason] += 1
            line = {**base, "reason": outcome.reason, "detail": outcome.detail}
            handles[DROPPED_FILE].write(json.dumps(line, ensure_ascii=False) + "\n")

    def _summary(self, figures: int, counts: dict, used: dict[str, ChatAnswer]) -> dict:
        prompt_tokens = sum(answer.prompt_tokens for answer in used.values())
        completion_tokens = sum(answer.completion_tokens for answer in used.values())
        cost = (
            prompt_tokens * self.config.input_price_per_million
            + completion_tokens * self.config.output_price_per_million
        ) / 1e6
        return {
            "model": self.config.model,
            "prompt_version": self.prompt_version,
            "sources": list(self.config.sources),
            "figures": figures,
            "kept": counts["kept"],
            "dropped": dict(sorted(counts["dropped"].items())),
            "rounds": {str(n): counts["rounds"][n] for n in sorted(counts["rounds"])},
            "rounds_dropped": dict(sorted(counts["rounds_dropped"].items())),
            "usage": {
                "answers": len(used),
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "cost": round(cost, 6),
                "input_price_per_million": self.config.input_price_per_million,
                "output_price_per_million": self.config.output_price_per_million,
            },
        }

    def _update_manifest(self, summary: dict) -> None:
        from qilin_med_vl.data.build import write_json

        manifest = read_manifest(self.folder)
        files = manifest["files"]
        earlier = set(files.get(CONVERSATION, []))
        files[INSTRUCTION] = [name for name in files.get(INSTRUCTION, []) if name not in earlier] + [
            CONVERSATION_FILE
        ]
        files[CONVERSATION] = [CONVERSATION_FILE]
        files[DROPPED_KEY] = [DROPPED_FILE]
        manifest[CONVERSATION] = summary
        write_json(self.folder / MANIFEST_FILE, manifest)


def converse(
    folder: Path, config: ConverseConfig, limit: int | None = None, progress: bool = True
) -> ConverseResult:
    """Generate the conversations of a build folder; see the module docstring."""
    return Conversations(folder, config, limit, progress).run()
