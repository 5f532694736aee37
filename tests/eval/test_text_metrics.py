"""Normalisation, exact match with synonyms, and recall/F1 on words and characters (hand-computed)."""

import pytest

from qilin_med_vl.eval.normalize import canonical_words, characters, normalize_text, words
from qilin_med_vl.eval.overlap import overlap
from qilin_med_vl.eval.scoring import exact_match


def test_normalize_text_folds_width_script_and_case():
    assert normalize_text("  ＣＴ，肝臟  ") == "ct,肝脏"


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [
        ("核磁共振", "MRI"),
        ("磁共振", "MRI"),
        ("磁共振成像", "mri"),
        ("X光", "X-Ray"),
        ("X线片", "X-Ray"),
        ("计算机断层扫描", "CT"),
        ("ＣＴ", "CT"),
        ("肝臟", "肝脏"),  # traditional
        ("肝脏", "Liver"),
        ("coronal", "Coronal Plane"),
        ("Coronal plane.", "Coronal Plane"),
        ("the lung", "Lung"),
        ("横断面", "Transverse Plane"),
    ],
)
def test_exact_match_after_normalisation_and_synonyms(prediction, reference):
    assert exact_match(prediction, reference) == 1.0


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [("不正常", "正常"), ("肺部", "肝脏"), ("MRI", "CT"), ("E. coli", "coli"), ("健康的", "健康")],
)
def test_exact_match_rejects_different_answers(prediction, reference):
    assert exact_match(prediction, reference) == 0.0


def test_synonyms_replace_whole_words_only():
    assert canonical_words("肝功能") == ["肝功能"]  # 肝 inside a word is not the organ on its own
    assert canonical_words("脑部出血") == ["brain", "出血"]


def test_word_overlap_hand_computed():
    # prediction [left, side, of, lung] ("the" dropped), reference [left, lung]: 2 shared words
    result = overlap(canonical_words("the left side of the lung"), canonical_words("left lung"))
    assert result.recall == 1.0
    assert result.precision == 0.5
    assert result.f1 == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_chinese_word_and_character_overlap_hand_computed():
    # jieba: 肺部有阴影 -> [肺部, 有, 阴影] -> [lung, 有, 阴影]; 肺部阴影 -> [lung, 阴影]
    by_word = overlap(canonical_words("肺部阴影"), canonical_words("肺部有阴影"))
    assert (by_word.recall, by_word.precision) == (pytest.approx(2 / 3), 1.0)
    # characters: [肺, 部, 阴, 影] against [肺, 部, 有, 阴, 影]
    by_char = overlap(characters(words("肺部阴影")), characters(words("肺部有阴影")))
    assert by_char.recall == pytest.approx(4 / 5)
    assert by_char.f1 == pytest.approx(2 * 1.0 * 0.8 / 1.8)


def test_overlap_counts_repeated_tokens_once_per_occurrence():
    result = overlap(["a", "a", "a"], ["a", "b"])  # min(3, 1) = 1 shared
    assert (result.recall, result.precision) == (0.5, pytest.approx(1 / 3))
    assert overlap([], ["a"]).f1 == 0.0
    assert overlap(["a"], []).recall == 0.0
