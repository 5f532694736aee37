"""The seeded ground truth: articles, their figures and findings, and every text written about them.

`make_world(seed, counts)` decides everything from one `random.Random(seed)`: which articles exist, what
each figure shows (modality, finding) and which question is asked about it. Figures are not rendered
here; each carries a render seed derived from (world seed, file name), so a picture does not depend on
the order in which pictures are drawn. Three sources, as the public datasets are laid out:

- PMC-OA: one caption per figure, one to three figures per article; plus the real DICOM pictures.
- PMC-CaseReport: one row per case, one to three cases per article, one to three figures per case (all
  of one modality and finding, so the question holds for the concatenated picture); cases shown in
  several figures are not asked for a side, since the figures are placed side by side.
- PMC-VQA: one to four figures per article, four choices per question; one question per figure, or
  several (`questions_per_figure`), each a row naming the figure, as the public release repeats a
  figure for each of its questions.

With one question per figure, its type is drawn uniformly, then a finding that lets the question be
asked: side, region and size questions need a lesion; presence questions have one half of the time, so
each answer is as common as the other. With several, the figure's finding comes first (a lesion half
of the time, so presence answers stay balanced), then distinct types that finding allows: the modality
and presence always, side, region and size when there is a lesion.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from qilin_med_vl.data.records import PMC_CASE_REPORT, PMC_OA, PMC_VQA
from qilin_med_vl.data.sources import CHOICE_LETTERS
from qilin_med_vl.data.synth import texts
from qilin_med_vl.data.synth.findings import (
    LESION_QUESTIONS,
    MODALITIES,
    NO_FINDING,
    PRESENCE_QUESTION,
    QUESTION_TYPES,
    REGIONS,
    SIDE_QUESTION,
    SIDES,
    SIZES,
    Finding,
)
from qilin_med_vl.data.synth.real import RealPicture
from qilin_med_vl.data.synth.texts import Bilingual

LESION_SHARE = 0.6  # share of figures with a lesion when the question does not decide it
BALANCED_SHARE = 0.5  # share with a lesion where presence is asked: "yes" as common as "no"
PREFIX_SHARE = 0.3  # share of case-report questions (and, separately, answers) written with Q: / A:
FIGURES_PER_CASE_WEIGHTS = (0.6, 0.25, 0.15)  # one, two, three figures
# first article number of each source: PMC ids of different sources never collide
ARTICLE_BASE = {PMC_OA: 3_000_000, PMC_CASE_REPORT: 5_000_000, PMC_VQA: 7_000_000}
CASE_REPORT_JOURNALS = ("crim", "jmcr", "ccr3", "pone")


@dataclass(frozen=True)
class Counts:
    captions: int
    cases: int
    vqa: int  # PMC-VQA figures
    questions_per_figure: int = 1  # PMC-VQA questions about each figure, at most


@dataclass(frozen=True)
class Figure:
    """One picture file: rendered from (modality, finding, seed), or a real picture when `real` is set."""

    name: str
    modality: str
    finding: Finding
    seed: int = 0
    real: RealPicture | None = None


@dataclass(frozen=True)
class CaptionItem:
    index: int
    pmcid: str
    url_name: str
    figure: Figure
    caption: Bilingual


@dataclass(frozen=True)
class CaseRow:
    index: int
    pmc_id: str
    figure_ids: tuple[str, ...]
    figures: tuple[Figure, ...]
    context: Bilingual
    inline: Bilingual
    question_type: str
    question: Bilingual  # without the Q: prefix
    answer: Bilingual  # without the A: prefix
    question_prefixed: bool
    answer_prefixed: bool

    @property
    def modality(self) -> str:
        return self.figures[0].modality

    @property
    def finding(self) -> Finding:
        return self.figures[0].finding


@dataclass(frozen=True)
class VqaRow:
    index: int
    figure: Figure
    question_type: str
    question: Bilingual
    answer: Bilingual
    choices: tuple[Bilingual, ...]  # A, B, C, D
    answer_label: str


@dataclass(frozen=True)
class World:
    seed: int
    captions: list[CaptionItem] = field(default_factory=list)
    cases: list[CaseRow] = field(default_factory=list)
    vqa: list[VqaRow] = field(default_factory=list)

    def figures(self) -> list[tuple[str, Figure]]:
        """(source, figure) for every picture file of the world, each once, in writing order."""
        found = [(PMC_OA, item.figure) for item in self.captions]
        found += [(PMC_CASE_REPORT, figure) for case in self.cases for figure in case.figures]
        # a PMC-VQA figure asked several questions is one file
        found += list(dict.fromkeys((PMC_VQA, row.figure) for row in self.vqa))
        return found


def render_seed(world_seed: int, name: str) -> int:
    """A figure's own seed: stable across Python versions and independent of drawing order."""
    digest = hashlib.sha256(f"{world_seed}\x00{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _lesion(rng: random.Random) -> Finding:
    return Finding(present=True, side=rng.choice(SIDES), region=rng.choice(REGIONS), size=rng.choice(SIZES))


def _finding_for(rng: random.Random, question_type: str) -> Finding:
    if question_type in LESION_QUESTIONS:
        return _lesion(rng)
    share = BALANCED_SHARE if question_type == PRESENCE_QUESTION else LESION_SHARE
    return _lesion(rng) if rng.random() < share else NO_FINDING


def _articles(rng: random.Random, source: str, total: int, most_per_article: int):
    """(article number, items in it) until `total` items are placed; ids grow with random gaps."""
    number = ARTICLE_BASE[source]
    placed = 0
    while placed < total:
        number += rng.randint(1, 40)
        size = min(rng.randint(1, most_per_article), total - placed)
        yield number, size
        placed += size


def _captions(rng: random.Random, seed: int, count: int, real: list[RealPicture]) -> list[CaptionItem]:
    items = []
    for number, size in _articles(rng, PMC_OA, count, 3):
        for figure_number in range(1, size + 1):
            modality = rng.choice(MODALITIES)
            finding = _lesion(rng) if rng.random() < LESION_SHARE else NO_FINDING
            name = f"PMC{number}_Fig{figure_number}.jpg"
            variant = rng.randrange(texts.caption_variant_count(finding))
            figure = Figure(name, modality, finding, render_seed(seed, name))
            items.append(
                CaptionItem(
                    index=len(items),
                    pmcid=f"PMC{number}",
                    url_name=f"Fig{figure_number}.jpg",
                    figure=figure,
                    caption=texts.caption(modality, finding, variant),
                )
            )
    number = ARTICLE_BASE[PMC_OA] - len(real)  # the real pictures: one article each, below the others
    for picture in real:
        number += 1
        name = f"PMC{number}_Fig1.jpg"
        figure = Figure(name, picture.modality, NO_FINDING, real=picture)
        caption = texts.real_caption(picture.modality)
        items.append(CaptionItem(len(items), f"PMC{number}", "Fig1.jpg", figure, caption))
    return items


def _cases(rng: random.Random, seed: int, count: int) -> list[CaseRow]:
    rows = []
    for number, size in _articles(rng, PMC_CASE_REPORT, count, 3):
        pmc_id = f"PMC{number}"
        journal = rng.choice(CASE_REPORT_JOURNALS)
        next_figure = 1
        for _ in range(size):
            figure_count = rng.choices((1, 2, 3), weights=FIGURES_PER_CASE_WEIGHTS)[0]
            allowed = [kind for kind in QUESTION_TYPES if figure_count == 1 or kind != SIDE_QUESTION]
            question_type = rng.choice(allowed)
            modality = rng.choice(MODALITIES)
            finding = _finding_for(rng, question_type)
            numbers = list(range(next_figure, next_figure + figure_count))
            next_figure += figure_count
            figure_ids = tuple(f"{journal}-{number:07d}-g{figure:03d}" for figure in numbers)
            figures = tuple(
                Figure(name, modality, finding, render_seed(seed, name))
                for name in (f"{pmc_id}_{figure_id}.jpg" for figure_id in figure_ids)
            )
            variant = rng.randrange(texts.variant_count(question_type))
            rows.append(
                CaseRow(
                    index=len(rows),
                    pmc_id=pmc_id,
                    figure_ids=figure_ids,
                    figures=figures,
                    context=texts.context(
                        modality, finding, rng.randint(20, 79), rng.choice(("male", "female"))
                    ),
                    inline=texts.inline(modality, finding, numbers),
                    question_type=question_type,
                    question=texts.question(question_type, modality, variant, plural=figure_count > 1),
                    answer=texts.answer(question_type, modality, finding),
                    question_prefixed=rng.random() < PREFIX_SHARE,
                    answer_prefixed=rng.random() < PREFIX_SHARE,
                )
            )
    return rows


def _several_questions(rng: random.Random, asked: int) -> list[tuple[str, Finding]]:
    """(question type, finding) of up to `asked` questions about one figure: one finding, distinct types."""
    finding = _lesion(rng) if rng.random() < BALANCED_SHARE else NO_FINDING
    allowed = [kind for kind in QUESTION_TYPES if finding.present or kind not in LESION_QUESTIONS]
    return [(kind, finding) for kind in rng.sample(allowed, min(asked, len(allowed)))]


def _vqa(rng: random.Random, seed: int, count: int, questions_per_figure: int) -> list[VqaRow]:
    rows = []
    for number, size in _articles(rng, PMC_VQA, count, 4):
        for figure_number in range(1, size + 1):
            if questions_per_figure == 1:  # the draw order of worlds with one question per figure
                question_type = rng.choice(QUESTION_TYPES)
                modality = rng.choice(MODALITIES)
                questions = [(question_type, _finding_for(rng, question_type))]
            else:
                modality = rng.choice(MODALITIES)
                questions = _several_questions(rng, questions_per_figure)
            name = f"PMC{number}_F{figure_number}.png"
            figure = Figure(name, modality, questions[0][1], render_seed(seed, name))
            for question_type, finding in questions:
                answer = texts.answer(question_type, modality, finding)
                choices = [answer, *texts.wrong_choices(question_type, modality, finding)]
                rng.shuffle(choices)
                variant = rng.randrange(texts.variant_count(question_type))
                rows.append(
                    VqaRow(
                        index=len(rows),
                        figure=figure,
                        question_type=question_type,
                        question=texts.question(question_type, modality, variant),
                        answer=answer,
                        choices=tuple(choices),
                        answer_label=CHOICE_LETTERS[choices.index(answer)],
                    )
                )
    return rows


def make_world(seed: int, counts: Counts, real: list[RealPicture] = ()) -> World:
    """The whole ground truth for `seed`; each source draws from its own generator, so changing one
    count leaves the other sources as they were."""
    return World(
        seed=seed,
        captions=_captions(random.Random(f"{seed}/pmc_oa"), seed, counts.captions, list(real)),
        cases=_cases(random.Random(f"{seed}/pmc_case_report"), seed, counts.cases),
        vqa=_vqa(random.Random(f"{seed}/pmc_vqa"), seed, counts.vqa, counts.questions_per_figure),
    )
