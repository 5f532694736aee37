"""The optional LLM-judge prompt and the reading of its verdict."""

import pytest

from qilin_med_vl.eval.items import OPEN, EvalItem
from qilin_med_vl.eval.judge_prompt import judge_prompt, judge_version, parse_verdict


def test_prompt_holds_question_reference_and_prediction_in_the_item_language():
    item = EvalItem(
        id="1", question="病变在哪里？", reference="右肺上叶", image=None, language="zh", answer_type=OPEN
    )
    prompt = judge_prompt(item, "右上肺")
    assert "问题：病变在哪里？" in prompt and "参考答案：右肺上叶" in prompt and "模型回答：右上肺" in prompt
    assert judge_version() == "qilin-eval-judge/1"


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("正确", 1.0), ("错误。", 0.0), ("不正确", 0.0), ("Correct.", 1.0), ("incorrect", 0.0),
     ("The answer is INCORRECT because...", 0.0), ("I am not sure", None), ("", None)],
)  # fmt: skip
def test_verdicts_are_read_longest_first(reply, verdict):
    assert parse_verdict(reply) == verdict
