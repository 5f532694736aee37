"""The hand-off artefact between the builder, training, stats and evaluation: LLaVA records in a built folder.

A record is one LLaVA conversation: `{"id", "image"? (path relative to the image root), "conversations":
[{"from": "human", "value": "...<image>..."}, {"from": "gpt", "value": "..."}, ...], "meta"?}`.

A built folder (`qilin data build`, `qilin data link-images`) holds `manifest.json`, whose `files`
lists each split's JSONL files (a sharded build lists every shard) and whose `images` names the image
root (relative to the folder). Everything that reads a build goes through `built_files(folder, split)`,
never by globbing, so drop logs and half-written shards are never read as data.

Splits: the two training stages, in curriculum order, and the held-out `test` split that evaluation
reads (records of both stages, told apart by `meta.stage`). Training never reads `test`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from qilin_med_vl.errors import DataError

ALIGNMENT = "alignment"  # stage 1: image -> caption / description (ChiMed-VL-Alignment)
INSTRUCTION = "instruction"  # stage 2: image + question -> answer (ChiMed-VL-Instruction)
STAGES = (ALIGNMENT, INSTRUCTION)
TEST = "test"  # held out by article, for `qilin eval --task chimed-vl`
SPLITS = (*STAGES, TEST)
# `qilin data converse` adds its multi-turn records to the `instruction` files and lists them again under
# this key, so that a later converse run, stats and review can tell them from the builder's own records
CONVERSATION = "conversation"

IMAGE_TOKEN = "<image>"
HUMAN, GPT = "human", "gpt"
ROLE_OF_SPEAKER = {HUMAN: "user", GPT: "assistant"}
SPEAKER_OF_ROLE = {role: speaker for speaker, role in ROLE_OF_SPEAKER.items()}

MANIFEST_FILE = "manifest.json"
DEFAULT_BUILD_OUT = Path("runs/chimed_vl")  # where configs/data/chimed_vl.yaml builds, and training reads
IMAGES_DIR = "images"
MANIFEST_FORMAT = "qilin-med-vl/chimed-vl-build/1"
# what each shard of a sharded build writes; manifest.json appears once every shard is done
SHARD_MANIFEST = re.compile(r"manifest-(\d{5})-of-(\d{5})\.json")


def shard_file_name(split: str, suffix: str) -> str:
    """`alignment-00000-of-00001.jsonl`: one split's records of one shard."""
    return f"{split}-{suffix}.jsonl"


def record_turns(record: object, where: str) -> list[tuple[str, str]]:
    """[(role "user"|"assistant", text), ...] of a record, checked; DataError names `where` and the fix."""
    if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
        raise DataError(f"{where}: a record needs a `conversations` list of {{from, value}} turns")
    record_id = record.get("id", where)
    turns = []
    for index, turn in enumerate(record["conversations"]):
        speaker = turn.get("from") if isinstance(turn, dict) else None
        if speaker not in ROLE_OF_SPEAKER or not isinstance(turn.get("value"), str):
            raise DataError(
                f"{where}: record {record_id!r} turn {index}: expected {{'from': 'human'|'gpt', 'value': str}}"
            )
        turns.append((ROLE_OF_SPEAKER[speaker], turn["value"]))
    roles = [role for role, _ in turns]
    if not turns or roles != ["user", "assistant"] * (len(turns) // 2):
        raise DataError(
            f"{where}: record {record_id!r}: turns must alternate human, gpt, human, gpt... (got {roles})"
        )
    return turns


def make_record(
    record_id: str, image: str | None, turns: list[tuple[str, str]], meta: dict | None = None
) -> dict:
    """The LLaVA record of (role, text) turns; the inverse of `record_turns`."""
    record: dict = {"id": record_id}
    if image is not None:
        record["image"] = image
    record["conversations"] = [{"from": SPEAKER_OF_ROLE[role], "value": text} for role, text in turns]
    if meta is not None:
        record["meta"] = meta
    return record


def strip_image_token(text: str) -> str:
    """A human turn without its `<image>` placeholder (and the newline LLaVA puts beside it)."""
    return (
        text.replace(IMAGE_TOKEN + "\n", "").replace("\n" + IMAGE_TOKEN, "").replace(IMAGE_TOKEN, "").strip()
    )


@dataclass(frozen=True)
class BuiltFiles:
    files: list[Path]  # the split's JSONL files, in shard order
    image_root: Path  # record `image` paths are relative to this folder


def _shard_manifests(folder: Path) -> list[re.Match]:
    if not folder.is_dir():
        return []
    return [match for path in folder.iterdir() if (match := SHARD_MANIFEST.fullmatch(path.name))]


def is_built_folder(path: str | Path) -> bool:
    path = Path(path)
    return (path / MANIFEST_FILE).is_file() or bool(_shard_manifests(path))


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST_FILE
    shards = _shard_manifests(Path(folder))
    if not path.is_file() and shards:
        count = int(shards[0].group(2))
        missing = sorted(set(range(count)) - {int(match.group(1)) for match in shards})
        raise DataError(
            f"{folder}: shards {missing} of {count} are not built yet; run `qilin data build --shard i/{count}` "
            "for each before using the folder"
        )
    if not path.is_file():
        raise DataError(
            f"{folder}: no {MANIFEST_FILE}; give a folder written by `qilin data build` or "
            "`qilin data link-images` (or a JSONL/JSON file of LLaVA records)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error}); rebuild the folder") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise DataError(f"{path}: not a build manifest (no `files` mapping); rebuild the folder")
    return manifest


def built_files(folder: str | Path, split: str) -> BuiltFiles:
    """The JSONL files of one split of a built folder and its image root, as its manifest lists them."""
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    folder = Path(folder)
    manifest = read_manifest(folder)
    shards = manifest.get("shards") or {}
    done, count = shards.get("done", [0]), shards.get("count", 1)
    if len(done) != count:
        missing = sorted(set(range(count)) - set(done))
        raise DataError(
            f"{folder}: shards {missing} of {count} are not built yet; run `qilin data build --shard i/{count}` "
            "for each before using the folder"
        )
    names = manifest["files"].get(split)
    if not names:
        listed = ", ".join(name for name in manifest["files"] if name in SPLITS) or "none"
        raise DataError(f"{folder}: the build has no {split!r} files (it has: {listed})")
    files = [folder / name for name in names]
    absent = [str(path) for path in files if not path.is_file()]
    if absent:
        raise DataError(f"{folder}: files listed in {MANIFEST_FILE} are missing: {', '.join(absent)}")
    return BuiltFiles(files=files, image_root=folder / manifest.get("images", IMAGES_DIR))
