"""`qilin data stats`: the paper's Table 1 (alignment) and Table 2 (instruction) figures for a dataset.

Per stage and source, and in total: pairs, total tokens, max, median (Q1, Q3) tokens of contexts and
inlines (alignment; PMC-OA captions count as inlines, as in the paper) or of questions and answers
(instruction). Quartiles are numpy's linear interpolation. Field texts come from each record's
`meta.spans` (written by `qilin data build`); records without spans (the released ChiMed-VL files)
count the gpt turns as inlines (alignment) or answers, and the human turns without `<image>` as
questions. The multi-turn records of `qilin data converse` (meta.kind `conversation`) have no spans and
count in a `conversation` column of their own: each round's question and answer.

Lengths are tokens of the given tokenizer (a folder with `tokenizer.json`, or that file, read with the
`tokenizers` library; a folder without it is loaded with transformers' AutoTokenizer), no special
tokens added; without a tokenizer they are jieba word counts (whitespace dropped). Lengths are kept as
4-byte integers: 1M records cost a few MB.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path

from qilin_med_vl.data.sources import RELEASED_FILE_STAGES, iter_json_records
from qilin_med_vl.errors import DataError
from qilin_med_vl.llava_format import (
    ALIGNMENT,
    CONVERSATION,
    IMAGE_TOKEN,
    INSTRUCTION,
    STAGES,
    built_files,
    is_built_folder,
    read_manifest,
)

STAGE_FIELDS = {ALIGNMENT: ("context", "inline"), INSTRUCTION: ("question", "answer")}
FIELD_COLUMN = {
    "caption": "inline",
    "context": "context",
    "inline": "inline",
    "question": "question",
    "answer": "answer",
}
TOTAL = "total"
TOKENIZE_BATCH = 1024
HISTOGRAM_NAME = "length_histogram.png"
STATS_NAME = "stats.json"


def _dataset_files(dataset: Path) -> list[tuple[Path, str | None]]:
    """(file, stage if the folder says it) for a built folder, a folder of released files, or a file."""
    if dataset.is_file():
        return [(dataset, None)]
    if not dataset.is_dir():
        raise DataError(f"{dataset}: no such dataset folder or file")
    if is_built_folder(dataset):
        listed = read_manifest(dataset)["files"]
        return [
            (path, stage) for stage in STAGES if stage in listed for path in built_files(dataset, stage).files
        ]
    files = sorted(
        path
        for path in dataset.iterdir()
        if path.suffix in (".json", ".jsonl") and path.stem in RELEASED_FILE_STAGES
    )
    if not files:
        raise DataError(
            f"{dataset}: neither a `qilin data build` folder (manifest.json) nor the released ChiMed-VL files "
            f"({', '.join(RELEASED_FILE_STAGES)}); give one of those, or one JSON/JSONL file"
        )
    return [(path, None) for path in files]


def _stage_of(record: dict, file_stage: str | None, path: Path) -> str:
    stage = (record.get("meta") or {}).get("stage") or file_stage or RELEASED_FILE_STAGES.get(path.stem)
    if stage in STAGES:
        return stage
    raise DataError(
        f"{path}: record {record.get('id')!r} says no stage (meta.stage) and the file name is none of "
        f"{', '.join(RELEASED_FILE_STAGES)}; measure a `qilin data build` or `qilin data link-images` folder"
    )


def _column_of(meta: dict) -> str:
    """The table column a record counts under: its source; `qilin data converse` records have their own."""
    if meta.get("kind") == CONVERSATION:
        return CONVERSATION
    return meta.get("source") or "released"


def _field_texts(record: dict, stage: str) -> Iterator[tuple[str, str]]:
    conversations = record.get("conversations") or []
    spans = (record.get("meta") or {}).get("spans")
    if spans:
        for name, (turn, start, end) in spans.items():
            yield FIELD_COLUMN.get(name, name), conversations[turn]["value"][start:end]
        return
    for turn in conversations:
        value = turn.get("value", "")
        if turn.get("from") == "gpt":
            yield ("inline" if stage == ALIGNMENT else "answer"), value
        elif stage == INSTRUCTION:
            yield "question", value.replace(IMAGE_TOKEN, "").strip()


def load_length_function(tokenizer: Path | None) -> tuple[Callable[[list[str]], list[int]], str]:
    """A batch length function and the name of its unit."""
    if tokenizer is None:
        import jieba

        jieba.setLogLevel(60)  # jieba logs its dictionary loading at INFO on every process start
        return (
            lambda texts: [sum(1 for word in jieba.cut(text) if word.strip()) for text in texts]
        ), "jieba words"
    file = tokenizer / "tokenizer.json" if tokenizer.is_dir() else tokenizer
    if file.is_file():
        from tokenizers import Tokenizer

        loaded = Tokenizer.from_file(str(file))
        return (
            lambda texts: [len(item.ids) for item in loaded.encode_batch(texts, add_special_tokens=False)]
        ), "tokens"
    if tokenizer.is_dir():
        from transformers import AutoTokenizer

        auto = AutoTokenizer.from_pretrained(str(tokenizer))
        return (
            lambda texts: [len(ids) for ids in auto(texts, add_special_tokens=False)["input_ids"]]
        ), "tokens"
    raise DataError(f"--tokenizer {tokenizer}: neither a tokenizer folder nor a tokenizer.json file")


def _summary(lengths: array) -> dict:
    import numpy as np

    if not lengths:
        return {"count": 0, "total": 0, "max": 0, "median": None, "q1": None, "q3": None}
    values = np.frombuffer(lengths, dtype=np.uint32)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {
        "count": int(values.size),
        "total": int(values.sum(dtype=np.int64)),
        "max": int(values.max()),
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
    }


def compute_stats(dataset: Path, tokenizer: Path | None = None) -> dict:
    """Table 1/2 figures for a dataset (see the module docstring); also returns the raw lengths."""
    measure, unit = load_length_function(tokenizer)
    lengths: dict = {}  # stage -> source -> field -> array of lengths
    pairs: dict = {}  # stage -> source -> records
    pending: list[tuple[array, str]] = []

    def flush() -> None:
        for target, value in zip(
            (item[0] for item in pending), measure([item[1] for item in pending]), strict=True
        ):
            target.append(value)
        pending.clear()

    for path, file_stage in _dataset_files(dataset):
        for location, record, error in iter_json_records(path):
            if error is not None or not isinstance(record, dict):
                raise DataError(f"{location}: not a JSON record ({error or 'not an object'})")
            stage = _stage_of(record, file_stage, path)
            source = _column_of(record.get("meta") or {})
            by_stage = pairs.setdefault(stage, {})
            by_stage[source] = by_stage.get(source, 0) + 1
            fields = lengths.setdefault(stage, {}).setdefault(source, {})
            for column, text in _field_texts(record, stage):
                pending.append((fields.setdefault(column, array("I")), text))
            if len(pending) >= TOKENIZE_BATCH:
                flush()
    flush()
    tables: dict = {}
    for stage in STAGES:
        if stage not in pairs:
            continue
        table: dict = {}
        for source in sorted(pairs[stage]):
            table[source] = {"pairs": pairs[stage][source]}
            for column in STAGE_FIELDS[stage]:
                table[source][column] = _summary(lengths[stage][source].get(column, array("I")))
        combined = {column: array("I") for column in STAGE_FIELDS[stage]}
        for source in pairs[stage]:
            for column in STAGE_FIELDS[stage]:
                combined[column].extend(lengths[stage][source].get(column, array("I")))
        table[TOTAL] = {"pairs": sum(pairs[stage].values())}
        table[TOTAL].update({column: _summary(values) for column, values in combined.items()})
        tables[stage] = table
    return {
        "dataset": str(dataset),
        "tokenizer": str(tokenizer) if tokenizer else None,
        "unit": unit,
        "tables": tables,
        "lengths": lengths,
    }


def _millions(total: int) -> str:
    return f"{total / 1e6:.1f}M" if total >= 1e6 else f"{total:,}"


def format_tables(stats: dict) -> str:
    """The tables as text, laid out like the paper's (one column per source, then the total)."""
    lines = []
    for stage, table in stats["tables"].items():
        columns = list(table)
        rows = [("pairs #", [f"{table[c]['pairs']:,}" for c in columns])]
        for field in STAGE_FIELDS[stage]:
            cells = [table[c][field] for c in columns]
            rows.append(
                (
                    f"{field} {stats['unit']} #",
                    [_millions(cell["total"]) if cell["count"] else "-" for cell in cells],
                )
            )
            rows.append((f"max {field}", [f"{cell['max']:,}" if cell["count"] else "-" for cell in cells]))
            rows.append(
                (
                    f"median (Q1, Q3) {field}",
                    [
                        f"{cell['median']:g} ({cell['q1']:g}, {cell['q3']:g})" if cell["count"] else "-"
                        for cell in cells
                    ],
                )
            )
        width = max(len(label) for label, _ in rows)
        cell_width = max([len(c) for c in columns] + [len(v) for _, values in rows for v in values])
        lines.append(f"ChiMed-VL {stage} ({stats['unit']})")
        lines.append(" " * width + "  " + "  ".join(c.rjust(cell_width) for c in columns))
        for label, values in rows:
            lines.append(label.ljust(width) + "  " + "  ".join(v.rjust(cell_width) for v in values))
        lines.append("")
    return "\n".join(lines)


def write_stats(stats: dict, out: Path) -> tuple[Path, Path]:
    """stats.json (the tables) and the length-histogram PNG, in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    json_path = out / STATS_NAME
    public = {key: value for key, value in stats.items() if key != "lengths"}
    json_path.write_text(json.dumps(public, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    panels = [(stage, field) for stage in stats["tables"] for field in STAGE_FIELDS[stage]]
    figure, axes = plt.subplots(
        1, max(1, len(panels)), figsize=(4.5 * max(1, len(panels)), 3.6), squeeze=False
    )
    for axis, (stage, field) in zip(axes[0], panels, strict=False):
        for source, fields in sorted(stats["lengths"][stage].items()):
            values = np.frombuffer(fields.get(field, array("I")), dtype=np.uint32)
            if values.size:
                axis.hist(values, bins=50, histtype="step", label=f"{source} ({values.size:,})")
        axis.set_title(f"{stage}: {field}")
        axis.set_xlabel(stats["unit"])
        axis.set_ylabel("records")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    figure.tight_layout()
    png_path = out / HISTOGRAM_NAME
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return json_path, png_path
