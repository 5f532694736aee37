"""Multiple-choice matching (letter, text, nearest, none) and caption BLEU-4 / ROUGE-L, hand-computed."""

import math

import pytest

from qilin_med_vl.eval.caption_metrics import bleu4, lcs_length, rouge_l
from qilin_med_vl.eval.choice import match_choice
from qilin_med_vl.eval.normalize import characters, words

CHOICES = {"A": "Pneumothorax", "B": "Pneumonia", "C": "No pneumonia", "D": "E. coli"}


@pytest.mark.parametrize(
    "answer",
    ["B", "B.", "(B)", "[B]", "B. Pneumonia", "B: pneumonia", "答案是B", "答案：B", "选B", "我选择 B",
     "B选项", "The answer is (b)", "Answer: B", "option B", "Ｂ"],
)  # fmt: skip
def test_letter_answers(answer):
    match = match_choice(answer, CHOICES)
    assert (match.letter, match.matched_by) == ("B", "letter")


@pytest.mark.parametrize(
    ("answer", "letter"),
    [("Pneumonia", "B"), ("no pneumonia", "C"), ("It is E. coli.", "D"), ("The answer: pneumothorax", "A")],
)
def test_option_text_answers(answer, letter):
    match = match_choice(answer, CHOICES)
    assert (match.letter, match.matched_by) == (letter, "text")


def test_words_that_start_with_a_capital_are_not_letters():
    assert match_choice("CT shows a mass", {"A": "mass", "B": "cyst", "C": "CT"}).matched_by != "letter"
    assert match_choice("A 45-year-old man", {"A": "x", "B": "y"}).matched_by != "letter"
    assert match_choice("The answer is a mass", {"A": "x", "B": "mass"}).letter == "B"  # by text, not "a"


def test_nearest_option_by_character_overlap():
    choices = {"A": "肺炎", "B": "气胸"}
    # "肺部炎症" shares 肺, 炎 with A: Dice 2*2/(4+2) = 0.67; none with B
    match = match_choice("肺部炎症", choices)
    assert (match.letter, match.matched_by) == ("A", "nearest")


def test_no_match_when_nothing_overlaps_or_ties():
    assert match_choice("", CHOICES).matched_by == "none"
    assert match_choice("xyz", {"A": "ab", "B": "cd"}).matched_by == "none"
    assert match_choice("ac", {"A": "ab", "B": "cb"}).matched_by == "none"  # 1 shared each: a tie


def test_bleu4_hand_computed():
    prediction, reference = "a b c d e".split(), "a b c d f".split()
    # p1 = 4/5; p2 = (3+1)/(4+1); p3 = (2+1)/(3+1); p4 = (1+1)/(2+1); BP = 1 (c = r = 5)
    expected = math.exp((math.log(4 / 5) + math.log(4 / 5) + math.log(3 / 4) + math.log(2 / 3)) / 4)
    assert bleu4(prediction, reference) == pytest.approx(expected)
    assert bleu4(reference, reference) == pytest.approx(1.0)
    assert bleu4([], reference) == 0.0
    assert bleu4(["x", "y"], reference) == 0.0  # no unigram match


def test_chinese_caption_metrics_on_characters_hand_computed():
    prediction, reference = characters(words("肺部阴影。")), characters(words("肺部有阴影"))
    assert prediction == ["肺", "部", "阴", "影"]
    # p1 = 4/4, p2 = (2+1)/(3+1), p3 = (0+1)/(2+1), p4 = (0+1)/(1+1); BP = exp(1 - 5/4)
    expected = math.exp(1 - 5 / 4) * (1 * 0.75 * (1 / 3) * 0.5) ** 0.25
    assert bleu4(prediction, reference) == pytest.approx(expected)
    assert lcs_length(prediction, reference) == 4
    assert rouge_l(prediction, reference) == pytest.approx(2 * 1.0 * 0.8 / 1.8)
    assert rouge_l(["x"], reference) == 0.0
