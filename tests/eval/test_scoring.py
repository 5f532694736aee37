"""Item scores by answer type and metric style: the headline number and the details the harness reads."""

import pytest

from qilin_med_vl.errors import QilinError
from qilin_med_vl.eval.items import CAPTION, CHOICE, CLOSED, OPEN, EvalItem
from qilin_med_vl.eval.llava_med_metrics import llava_closed, llava_normalize, llava_open
from qilin_med_vl.eval.scoring import DETAIL_KEYS, METRIC_VERSION, metric_versions, score_item


def item(answer_type, reference, language="zh", choices=None):
    return EvalItem(
        id="1",
        question="q",
        reference=reference,
        image=None,
        language=language,
        answer_type=answer_type,
        choices=choices or {},
    )


@pytest.mark.parametrize(
    ("reference", "prediction", "score", "rule"),
    [
        ("不是", "不是，存在异常", 1.0, "polarity"),
        ("包含", "不包含", 0.0, "polarity"),
        ("不包含", "图中不包含肝脏。", 1.0, "polarity"),
        ("是的", "是", 1.0, "polarity"),
        ("是", "无法判断", 0.0, "polarity"),
        ("健康", "是", 0.0, "exact"),  # a condition word is an answer, not a yes
        ("健康", "健康。", 1.0, "exact"),
        ("正常", "不正常", 0.0, "exact"),
        ("肝脏", "肝臟", 1.0, "exact"),
        ("Coronal Plane", "coronal", 1.0, "exact"),
        ("MRI", "核磁共振", 1.0, "exact"),
        ("Yes", "No, it is not.", 0.0, "polarity"),
    ],
)
def test_closed_items(reference, prediction, score, rule):
    result = score_item(item(CLOSED, reference), prediction)
    assert result.score == score
    assert result.details["rule"] == rule
    assert "exact" in result.details


def test_closed_exact_detail_stays_strict_when_polarity_agrees():
    result = score_item(item(CLOSED, "不是"), "不是，存在异常")
    assert (result.score, result.details["exact"]) == (1.0, 0.0)
    assert (result.details["reference_polarity"], result.details["prediction_polarity"]) == ("no", "no")


def test_open_item_scores_its_recall_with_f1_and_exact_beside_it():
    result = score_item(item(OPEN, "left lung", language="en"), "The left side of the lung")
    assert result.score == 1.0
    assert result.details["recall"] == 1.0
    assert result.details["f1"] == pytest.approx(2 / 3)
    assert result.details["exact"] == 0.0
    assert "recall_char" not in result.details


def test_chinese_open_item_has_character_variants():
    result = score_item(item(OPEN, "肺部有阴影"), "肺部阴影")
    assert result.score == pytest.approx(2 / 3)  # words [lung, 阴影] of [lung, 有, 阴影]
    assert result.details["recall_char"] == pytest.approx(4 / 5)
    assert result.details["f1_char"] == pytest.approx(8 / 9)


def test_synonym_answer_to_an_open_question_is_exact():
    result = score_item(item(OPEN, "MRI", language="en"), "magnetic resonance imaging")
    assert (result.score, result.details["exact"]) == (1.0, 1.0)


def test_choice_item_records_how_the_answer_was_matched():
    choices = {"A": "Pneumothorax", "B": "E. coli"}
    by_letter = score_item(item(CHOICE, "B", "en", choices), "答案是B")
    by_text = score_item(item(CHOICE, "B", "en", choices), "E. coli")
    wrong = score_item(item(CHOICE, "B", "en", choices), "(A)")
    assert (by_letter.score, by_letter.details["matched_by"]) == (1.0, "letter")
    assert (by_text.score, by_text.details["matched_by"]) == (1.0, "text")
    assert (wrong.score, wrong.details["predicted"], wrong.details["exact"]) == (0.0, "A", 0.0)


def test_caption_item_scores_rouge_l_with_bleu4():
    result = score_item(item(CAPTION, "肺部有阴影"), "肺部阴影")
    assert result.score == pytest.approx(8 / 9)
    assert result.details["rouge_l"] == result.score
    assert 0 < result.details["bleu4"] < 1


def test_llava_med_normalisation_quirks():
    assert llava_normalize("The lung, left.") == "lung left"  # ", " deletes the comma; the period goes
    assert llava_normalize("x-ray") == "x ray"  # a mark not beside a space becomes a space
    assert llava_normalize("1,000 cells") == "1000 cells"
    assert llava_normalize("Two") == "2"


def test_llava_med_open_formulas_hand_computed():
    result = llava_open("Left lung is seen", "left lung")
    # tokens [left, lung, is, seen] vs [left, lung]: tp 2, fp 2, fn 0
    assert (result.recall, result.precision, result.f1) == (1.0, 0.5, pytest.approx(2 / 3))
    assert result.exact == 0.5  # their exact match: 2 distinct reference words / 4 prediction words
    assert result.open_hit == 1.0
    chinese = llava_open("肺部有结节", "结节")  # no spaces: one token each side
    assert (chinese.recall, chinese.open_hit) == (0.0, 1.0)


def test_llava_med_closed_rule_is_a_substring_test():
    assert llava_closed("I do not know", "no") == 1.0  # their quirk: "no" is inside "not"
    assert llava_closed("Yes, it is", "no") == 0.0
    assert llava_closed("yes", "Yes") == 1.0


def test_llava_med_style_applies_to_open_and_closed_items_only():
    closed = score_item(item(CLOSED, "no", "en"), "not sure", metric_style="llava-med")
    assert (closed.score, closed.details["rule"]) == (1.0, "substring")
    opened = score_item(item(OPEN, "left lung", "en"), "Left lung is seen", metric_style="llava-med")
    assert (opened.score, opened.details["exact"], opened.details["open_hit"]) == (1.0, 0.5, 1.0)
    choice = score_item(item(CHOICE, "A", "en", {"A": "x", "B": "y"}), "A", metric_style="llava-med")
    assert choice.details["matched_by"] == "letter"


def test_unknown_metric_style_is_refused():
    with pytest.raises(QilinError, match="metric style"):
        score_item(item(OPEN, "x"), "x", metric_style="bleu")


def test_versions_name_the_formulas_and_word_lists():
    versions = metric_versions()
    assert versions["metrics"] == METRIC_VERSION
    assert versions["synonyms"].startswith("qilin-eval-synonyms/")
    assert versions["polarity"].startswith("qilin-eval-polarity/")


@pytest.mark.parametrize("style", ["qilin", "llava-med"])
@pytest.mark.parametrize(
    ("answer_type", "reference", "choices"),
    [
        (OPEN, "左肺", None),
        (CLOSED, "是", None),
        (CLOSED, "肝脏", None),
        (CHOICE, "A", {"A": "x", "B": "y"}),
        (CAPTION, "胸部CT", None),
    ],
)
def test_every_item_carries_the_details_of_its_answer_type(style, answer_type, reference, choices):
    result = score_item(item(answer_type, reference, choices=choices), "随便一个回答", metric_style=style)
    assert set(DETAIL_KEYS[answer_type]) <= set(result.details)
    assert 0.0 <= result.score <= 1.0
