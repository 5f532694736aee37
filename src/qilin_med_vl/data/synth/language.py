"""The shape of one language's phrase book: the same keys and template slots in English and in Chinese.

english.py and chinese.py each fill one `PhraseBook`; texts.py composes every sentence of the world from
both with the same choices, so each English text has exactly one Chinese counterpart. Template slots:
{lesion}, {this_image}, {the_image}, {modality}, {size}, {place}, {figures}, {age}, {sex}, {symptom},
{exam}, {outcome}.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PhraseBook:
    modality_answer: dict[str, str]  # short answer to "what modality", e.g. "Chest X-ray" / "胸部X光片"
    modality_phrase: dict[str, str]  # the modality inside a sentence
    lesion: dict[str, str]  # the lesion noun of each modality
    answers: dict[str, str]  # yes/no and the finding values (left, upper, small...) as short answers
    distractors: dict[str, tuple[str, ...]]  # wrong multiple-choice options per question type
    size_adjective: dict[str, str]  # small/large inside a sentence
    place: dict[tuple[str, str], str]  # (side, region) inside a sentence, e.g. "upper left"
    this_image: tuple[str, str]  # (one image, several images)
    the_image: tuple[str, str]
    questions: dict[str, tuple[str, ...]]  # question-type -> template variants
    caption_present: tuple[str, ...]
    caption_absent: tuple[str, ...]
    inline_present: tuple[str, str]  # (one figure, several figures)
    inline_absent: tuple[str, str]
    figure_refs: tuple[str, str, str]  # one, two, three figures: slots {a}, {b}, {c}
    context: str
    sex: dict[str, str]
    symptom: dict[str, str]
    exam: dict[str, str]
    outcome_present: str
    outcome_absent: str
    real_caption: dict[str, str]  # captions of the real DICOM pictures, by their modality
    capitalize_sentences: bool  # English sentences start with a capital letter; Chinese has none
