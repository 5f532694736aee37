"""The figures a conversation is generated for, read from a build's stage records, and their source text.

A figure is one image of one article of one source: the case report's alignment record (context,
inline text) and instruction record(s) (question, answer) of the same image, or a PMC-OA caption.
Field texts are cut from the records with their `meta.spans`, so they are what the build holds (Chinese
after translation). Only the builder's stage files are read: never the held-out `test` files (so no test
article reaches training through a conversation), never the drop log, never an earlier converse output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from qilin_med_vl.errors import DataError
from qilin_med_vl.llava_format import CONVERSATION, STAGES, built_files, read_manifest

# how each source field is introduced to the model, in the order the source text lists them
FIELD_LABELS = {
    "caption": "Caption",
    "context": "Case context",
    "inline": "Text about the figure",
    "question": "Question",
    "answer": "Answer",
}
# a figure's questions and answers share one rank, so several QA pairs stay in pairs, in record order
_FIELD_RANK = {"caption": 0, "context": 1, "inline": 2, "question": 3, "answer": 3}


@dataclass
class Figure:
    source: str
    ref: str
    image: str
    record_ids: list[str] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)  # (field name, text), in record order

    @property
    def conversation_id(self) -> str:
        return f"{CONVERSATION}-{self.record_ids[0]}"

    def source_text(self) -> str:
        """What the model is given: one 'Label: text' line per field, the texts before the QA pairs."""
        ordered = sorted(self.fields, key=lambda item: _FIELD_RANK[item[0]])
        return "\n".join(f"{FIELD_LABELS[name]}: {text}" for name, text in ordered)


def stage_record_files(folder: Path) -> list[Path]:
    """The builder's own stage files of a build (any earlier conversation files left out)."""
    listed = read_manifest(folder)["files"]
    earlier = set(listed.get(CONVERSATION, []))
    return [
        path
        for stage in STAGES
        if listed.get(stage)
        for path in built_files(folder, stage).files
        if path.name not in earlier
    ]


def _records(path: Path) -> Iterator[tuple[str, dict]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(
                        f"{path}:{number}: not a JSON record ({error}); rebuild the folder"
                    ) from error


def read_figures(folder: Path, sources: list[str]) -> list[Figure]:
    """The figures of `sources` in the build, in the order their first record appears."""
    figures: dict[tuple[str, str, str], Figure] = {}
    for path in stage_record_files(folder):
        for where, record in _records(path):
            meta = record.get("meta") or {}
            spans, image = meta.get("spans"), record.get("image")
            if meta.get("source") not in sources or not spans or not image:
                continue
            key = (meta["source"], meta.get("ref", ""), image)
            figure = figures.setdefault(key, Figure(source=key[0], ref=key[1], image=image))
            figure.record_ids.append(record["id"])
            for name, (turn, start, end) in spans.items():
                if name not in FIELD_LABELS:
                    raise DataError(f"{where}: span {name!r} is no source field of {', '.join(FIELD_LABELS)}")
                text = record["conversations"][turn]["value"][start:end].strip()
                if text and (name, text) not in figure.fields:
                    figure.fields.append((name, text))
    return list(figures.values())
