"""Prompt pools of the paper and the composition of one LLaVA conversation record per kept sample.

The pools are the Chinese prompts of the Qilin-Med-VL paper (arXiv 2310.17956, Appendix A.1,
Figure 5), shipped as `resources/prompt_templates.json`: 22 for feature alignment, 7 for instruction
tuning. For each sample one template is drawn with a random generator seeded by (build seed, record
id), so the choice does not depend on sharding, worker count or batch size. `<question>` is replaced
by the (translated) question; `<image>` stays where the template puts it, as the literal token LLaVA
loaders expand.

What each sample says (the human turn is the drawn template; the gpt turn is the answer):
- PMC-OA alignment: answer = the caption.
- PMC-CaseReport alignment: answer = the configured fields joined by a newline, by default the inline
  description of the figure, then its context paragraph (empty fields are left out).
- PMC-CaseReport instruction: question -> answer.
- PMC-VQA instruction, `vqa_format: open` (default, as in the paper's Table 2 and Figure 4): the
  question -> the text of the correct choice. `vqa_format: choice`: the question followed by one line
  per choice, "A. 气胸", -> "B. 肿块" (letter and text of the correct choice).

Every record carries `meta.spans`: for each source field, [turn, start, end] character offsets into
the conversation values, so `qilin data stats` can measure contexts, inlines, questions and answers
separately without storing any text twice.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from importlib import resources

from qilin_med_vl.data.records import PMC_CASE_REPORT, PMC_OA, PMC_VQA, Candidate
from qilin_med_vl.data.sources import CHOICE_LETTERS
from qilin_med_vl.errors import DataError
from qilin_med_vl.llava_format import ALIGNMENT, IMAGE_TOKEN, INSTRUCTION

QUESTION_SLOT = "<question>"
PROMPT_POOLS_RESOURCE = "prompt_templates.json"
VQA_FORMATS = ("open", "choice")
DEFAULT_CASE_REPORT_ALIGNMENT_FIELDS = ("inline", "context")


@dataclass(frozen=True)
class PromptPools:
    alignment: tuple[str, ...]
    instruction: tuple[str, ...]

    def pool(self, stage: str) -> tuple[str, ...]:
        return self.alignment if stage == ALIGNMENT else self.instruction


def load_prompt_pools() -> PromptPools:
    """The paper's Chinese prompt pools from the package data, checked for their slots."""
    text = resources.files("qilin_med_vl.resources").joinpath(PROMPT_POOLS_RESOURCE).read_text("utf-8")
    data = json.loads(text)
    pools = PromptPools(
        alignment=tuple(entry["zh"] for entry in data[ALIGNMENT]),
        instruction=tuple(entry["zh"] for entry in data[INSTRUCTION]),
    )
    for template in pools.alignment + pools.instruction:
        if template.count(IMAGE_TOKEN) != 1:
            raise DataError(f"{PROMPT_POOLS_RESOURCE}: template {template!r} must hold {IMAGE_TOKEN} once")
    for template in pools.instruction:
        if template.count(QUESTION_SLOT) != 1:
            raise DataError(f"{PROMPT_POOLS_RESOURCE}: template {template!r} must hold {QUESTION_SLOT} once")
    return pools


def template_index(seed: int, record_id: str, pool_size: int) -> int:
    """The template drawn for one record: a generator seeded by (seed, record id), stable everywhere."""
    digest = hashlib.sha256(f"{seed}\x00{record_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).randrange(pool_size)


def needed_fields(
    candidate: Candidate,
    vqa_format: str = "open",
    case_report_alignment_fields: tuple[str, ...] = DEFAULT_CASE_REPORT_ALIGNMENT_FIELDS,
) -> tuple[str, ...]:
    """The source fields a candidate's record is made of, in the order they appear in it."""
    source, stage = candidate.row.source, candidate.stage
    if source == PMC_OA:
        return ("caption",)
    if source == PMC_CASE_REPORT and stage == ALIGNMENT:
        return tuple(case_report_alignment_fields)
    if source == PMC_VQA and vqa_format == "choice":
        return ("question", *(f"choice_{letter}" for letter in CHOICE_LETTERS))
    return ("question", "answer")


def compose(
    candidate: Candidate,
    texts: dict[str, str],
    image: str,
    pools: PromptPools,
    seed: int,
    vqa_format: str = "open",
    case_report_alignment_fields: tuple[str, ...] = DEFAULT_CASE_REPORT_ALIGNMENT_FIELDS,
) -> dict:
    """The LLaVA conversation record of a kept candidate; `texts` holds its (translated) fields."""
    record_id = candidate.record_id
    pool = pools.pool(candidate.stage)
    index = template_index(seed, record_id, len(pool))
    template = pool[index]
    spans: dict[str, list[int]] = {}
    if candidate.stage == ALIGNMENT:
        fields = needed_fields(candidate, vqa_format, case_report_alignment_fields)
        parts, offset = [], 0
        for name in fields:
            value = texts.get(name, "")
            if not value:
                continue
            if parts:
                offset += 1  # the joining newline
            spans[name] = [1, offset, offset + len(value)]
            parts.append(value)
            offset += len(value)
        human, answer = template, "\n".join(parts)
    else:
        question, answer, answer_field = texts["question"], texts.get("answer", ""), "answer"
        if candidate.row.source == PMC_VQA and vqa_format == "choice":
            label = candidate.row.answer_label
            lines = [question] + [f"{letter}. {texts[f'choice_{letter}']}" for letter in CHOICE_LETTERS]
            question = "\n".join(lines)
            answer, answer_field = f"{label}. {texts[f'choice_{label}']}", "answer"
        start = template.index(QUESTION_SLOT)
        human = template.replace(QUESTION_SLOT, question)
        spans["question"] = [0, start, start + len(question)]
        spans[answer_field] = [1, 0, len(answer)]
    return {
        "id": record_id,
        "image": image,
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": answer}],
        "meta": {
            "source": candidate.row.source,
            "stage": candidate.stage,
            "ref": candidate.row.ref,
            "source_images": list(candidate.row.images),
            "template": index,
            "spans": spans,
        },
    }
