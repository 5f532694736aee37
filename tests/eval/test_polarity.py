"""Yes/no polarity: the lexicon, the first clause, longest match, and condition words left alone."""

import pytest

from qilin_med_vl.eval.polarity import prediction_polarity, reference_polarity

# SLAKE's Chinese closed answers: each maps to yes, no, or None (scored by exact match instead)
SLAKE_ZH_CLOSED = {
    "是": "yes", "是的": "yes", "有": "yes", "包含": "yes", "可以": "yes", "存在": "yes",
    "否": "no", "不是": "no", "没有": "no", "不包含": "no", "不可以": "no", "不存在": "no", "不能": "no",
    "肺": None, "肝脏": None, "横断面": None, "健康": None, "不正常": None, "正常": None, "异常": None,
}  # fmt: skip


@pytest.mark.parametrize(("answer", "expected"), SLAKE_ZH_CLOSED.items())
def test_chinese_closed_references(answer, expected):
    assert reference_polarity(answer) == expected


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("不是，存在异常", "no"),  # only the first clause counts
        ("是的，没有异常", "yes"),
        ("不包含", "no"),  # longest match: never the 包含 inside it
        ("图中不包含肝脏", "no"),
        ("肺是健康的", "yes"),
        ("不，它是健康的", "no"),
        ("没有明显异常。", "no"),
        ("未见异常", "no"),
        ("肝功能正常", None),  # 能 inside 功能 is not a word of its own
        ("无法判断", None),  # 无法 is neutral, not 无
        ("不正常", None),  # condition words are never yes or no
        ("健康", None),
        ("肺是否健康", None),
        ("是的", "yes"),
        ("是", "yes"),
        ("Yes.", "yes"),
        ("No, there is no mass.", "no"),
        ("The lung is not healthy", "no"),
        ("It isn't.", "no"),
        ("yes, but it is not clear", "yes"),
        ("normal", None),
        ("", None),
    ],
)
def test_prediction_polarity_reads_the_first_clause(prediction, expected):
    assert prediction_polarity(prediction) == expected


def test_traditional_and_full_width_forms_are_read():
    assert prediction_polarity("不是，存在異常") == "no"
    assert prediction_polarity("是的．") == "yes"
    assert prediction_polarity("ＹＥＳ") == "yes"


def test_a_reference_has_a_polarity_only_when_it_opens_with_one():
    assert reference_polarity("是的，可见肺部结节") == "yes"
    assert reference_polarity("没有明显异常") == "no"
    assert reference_polarity("肺部有结节") is None  # an open answer that happens to contain 有
    assert reference_polarity("There is no mass") is None
    assert reference_polarity("No") == "no"
