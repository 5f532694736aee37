"""The text-only records that stand in for a pretrained LLM: the build's training records without pictures.

The paper starts from an LLM that already knows Chinese (Llama2-Chinese-13b-Chat); stage 1 only
teaches a projector to map image features into a language the LLM knows. The demo's tiny LLM starts
random, and alignment does not teach a random LLM a language (measured: caption loss 3.8 -> 3.46 in
300 steps), so the demo first trains the LLM on the build's own training texts with no image: the
captions, questions and answers it will later see beside the pictures. Held-out records are never used.
"""

from __future__ import annotations

import json
from pathlib import Path

from qilin_med_vl.llava_format import IMAGE_TOKEN, STAGES, built_files, make_record, record_turns


def write_text_corpus(build: Path, out: Path) -> int:
    """Write the text-only twin of every training record of `build` to `out` (JSONL); returns the count."""
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with out.open("w", encoding="utf-8") as handle:
        for stage in STAGES:
            for path in built_files(build, stage).files:
                for number, line in enumerate(path.open(encoding="utf-8"), start=1):
                    record = json.loads(line)
                    turns = record_turns(record, f"{path}:{number}")
                    text_turns = [(role, text.replace(IMAGE_TOKEN, "").strip()) for role, text in turns]
                    handle.write(
                        json.dumps(make_record(f"text-{record['id']}", None, text_turns), ensure_ascii=False)
                    )
                    handle.write("\n")
                    count += 1
    return count
