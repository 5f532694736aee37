"""Every sentence of the synthetic world, composed in English and Chinese from the same choices.

Each function returns a `Bilingual` pair: the English text written to the source files and its Chinese
reference, written to the translation-memory import file. `variant` picks one of a phrase book's
template variants (the world draws it); `plural` is True for a case shown in several figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from qilin_med_vl.data.synth.chinese import CHINESE
from qilin_med_vl.data.synth.english import ENGLISH
from qilin_med_vl.data.synth.findings import (
    MODALITY_QUESTION,
    NO,
    NO_FINDING,
    PRESENCE_QUESTION,
    REGION_QUESTION,
    REGIONS,
    SIDE_QUESTION,
    SIDES,
    SIZE_QUESTION,
    SIZES,
    YES,
    Finding,
)
from qilin_med_vl.data.synth.language import PhraseBook

BOOKS = (ENGLISH, CHINESE)


@dataclass(frozen=True)
class Bilingual:
    en: str
    zh: str


def _sentence(book: PhraseBook, text: str) -> str:
    return text[:1].upper() + text[1:] if book.capitalize_sentences else text


def _both(compose) -> Bilingual:
    english, chinese = (compose(book) for book in BOOKS)
    return Bilingual(english, chinese)


def _finding_slots(book: PhraseBook, modality: str, finding: Finding, plural: bool) -> dict[str, str]:
    slots = {
        "lesion": book.lesion[modality],
        "modality": book.modality_phrase[modality],
        "this_image": book.this_image[plural],
        "the_image": book.the_image[plural],
    }
    if finding.present:
        slots["size"] = book.size_adjective[finding.size]
        slots["place"] = book.place[(finding.side, finding.region)]
    return slots


def variant_count(question_type: str) -> int:
    return len(ENGLISH.questions[question_type])


def question(question_type: str, modality: str, variant: int, plural: bool = False) -> Bilingual:
    def compose(book: PhraseBook) -> str:
        template = book.questions[question_type][variant]
        return _sentence(book, template.format(**_finding_slots(book, modality, NO_FINDING, plural)))

    return _both(compose)


def _answer_key(question_type: str, finding: Finding) -> str:
    if question_type == PRESENCE_QUESTION:
        return YES if finding.present else NO
    return {SIDE_QUESTION: finding.side, REGION_QUESTION: finding.region, SIZE_QUESTION: finding.size}[
        question_type
    ]


def answer(question_type: str, modality: str, finding: Finding) -> Bilingual:
    """The short answer: the modality's name, Yes/No, Left/Right, Upper/Lower or Small/Large."""
    if question_type == MODALITY_QUESTION:
        return _both(lambda book: book.modality_answer[modality])
    key = _answer_key(question_type, finding)
    return _both(lambda book: book.answers[key])


def wrong_choices(question_type: str, modality: str, finding: Finding) -> list[Bilingual]:
    """The multiple-choice options that are not the answer (three of them, in a fixed order)."""
    if question_type == MODALITY_QUESTION:
        others = [name for name in ENGLISH.modality_answer if name != modality]
        return [_both(lambda book, name=name: book.modality_answer[name]) for name in others[:3]]
    options = {
        PRESENCE_QUESTION: (YES, NO),
        SIDE_QUESTION: SIDES,
        REGION_QUESTION: REGIONS,
        SIZE_QUESTION: SIZES,
    }[question_type]
    key = _answer_key(question_type, finding)
    opposite = next(option for option in options if option != key)
    choices = [_both(lambda book: book.answers[opposite])]
    for position in range(len(ENGLISH.distractors[question_type])):
        choices.append(_both(lambda book, position=position: book.distractors[question_type][position]))
    return choices


def caption(modality: str, finding: Finding, variant: int) -> Bilingual:
    def compose(book: PhraseBook) -> str:
        templates = book.caption_present if finding.present else book.caption_absent
        return _sentence(book, templates[variant].format(**_finding_slots(book, modality, finding, False)))

    return _both(compose)


def caption_variant_count(finding: Finding) -> int:
    return len(ENGLISH.caption_present if finding.present else ENGLISH.caption_absent)


def inline(modality: str, finding: Finding, figure_numbers: list[int]) -> Bilingual:
    """The sentence of the article that cites the case's figures, e.g. 'Figures 3 and 4 (...) show ...'."""

    def compose(book: PhraseBook) -> str:
        first, last = figure_numbers[0], figure_numbers[-1]
        figures = book.figure_refs[len(figure_numbers) - 1].format(a=first, b=last, c=last)
        plural = len(figure_numbers) > 1
        template = (book.inline_present if finding.present else book.inline_absent)[plural]
        slots = _finding_slots(book, modality, finding, plural)
        return _sentence(book, template.format(figures=figures, **slots))

    return _both(compose)


def context(modality: str, finding: Finding, age: int, sex: str) -> Bilingual:
    """The case paragraph: who the patient is, why the examination was done, what it found."""

    def compose(book: PhraseBook) -> str:
        slots = _finding_slots(book, modality, finding, False)
        outcome = (book.outcome_present if finding.present else book.outcome_absent).format(**slots)
        return book.context.format(
            age=age,
            sex=book.sex[sex],
            symptom=book.symptom[modality],
            exam=book.exam[modality],
            outcome=outcome,
        )

    return _both(compose)


def real_caption(modality: str) -> Bilingual:
    return _both(lambda book: book.real_caption[modality])
