"""The vocabulary of the synthetic world: modalities, finding values and question types, named once.

A finding is a single lesion (or none) described by four facts; where it lies is read in image
coordinates (left/right and upper/lower half of the picture as displayed), the same for every
modality, so that one answer always means one place in the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

CHEST_XRAY = "chest_xray"
HEAD_CT = "head_ct"
ABDOMINAL_CT = "abdominal_ct"
ULTRASOUND = "ultrasound"
HISTOLOGY = "histology"
MODALITIES = (CHEST_XRAY, HEAD_CT, ABDOMINAL_CT, ULTRASOUND, HISTOLOGY)

YES, NO = "yes", "no"  # the two answers about a lesion's presence
LEFT, RIGHT = "left", "right"
UPPER, LOWER = "upper", "lower"
SMALL, LARGE = "small", "large"
SIDES = (LEFT, RIGHT)
REGIONS = (UPPER, LOWER)
SIZES = (SMALL, LARGE)

# Question types, also the `question_type` of ground_truth.jsonl; captions and alignment texts are CAPTION.
MODALITY_QUESTION = "modality"
PRESENCE_QUESTION = "presence"
SIDE_QUESTION = "side"
REGION_QUESTION = "region"
SIZE_QUESTION = "size"
QUESTION_TYPES = (MODALITY_QUESTION, PRESENCE_QUESTION, SIDE_QUESTION, REGION_QUESTION, SIZE_QUESTION)
LESION_QUESTIONS = (SIDE_QUESTION, REGION_QUESTION, SIZE_QUESTION)  # asked only when a lesion is there
CAPTION = "caption"


@dataclass(frozen=True)
class Finding:
    """One lesion, or none (`present` False and the other facts None)."""

    present: bool
    side: str | None = None
    region: str | None = None
    size: str | None = None

    def __post_init__(self) -> None:
        given = [fact is not None for fact in (self.side, self.region, self.size)]
        if not (all(given) if self.present else not any(given)):
            raise ValueError(f"a finding has side, region and size exactly when present: {self}")

    def to_json(self) -> dict:
        return {"present": self.present, "side": self.side, "region": self.region, "size": self.size}


NO_FINDING = Finding(present=False)
