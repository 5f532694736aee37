"""The grounding checks of generated answers and the parsing of the model's rounds, on hand-made texts."""

from __future__ import annotations

import pytest

from qilin_med_vl.data.converse import reasons
from qilin_med_vl.data.converse.grounding import GlossaryIndex, SourceFacts, check_answer, quantities, sides
from qilin_med_vl.data.converse.prompt import parse_rounds
from qilin_med_vl.data.translation.glossary import Glossary

GLOSSARY = GlossaryIndex(
    Glossary([("pneumothorax", "气胸"), ("lung cancer", "肺癌"), ("pulmonary carcinoma", "肺癌")])
)
SOURCE = "CT showed a 3.5 cm pneumothorax of the right lung; heart rate 120 bpm."


def reason(answer: str, source: str = SOURCE) -> str | None:
    failure = check_answer(answer, SourceFacts.of(source, GLOSSARY), GLOSSARY)
    return None if failure is None else failure.reason


def test_quantities_read_symbols_and_chinese_names_as_one_unit():
    assert quantities("a 3 cm mass, 5 mg/kg, 37 °C, 12%") == {
        ("3", "厘米"),
        ("5", "毫克/千克"),
        ("37", "摄氏度"),
        ("12", "%"),
    }
    assert quantities("肿块3厘米，剂量5毫克每千克，体温37度，12%") == quantities(
        "a 3 cm mass, 5 mg/kg, 37 °C, 12%"
    )


def test_sides_in_both_languages_and_words_that_are_no_side():
    assert sides("右肺上叶") == {"right"}
    assert sides("The LEFT kidney") == {"left"}
    assert sides("双肺弥漫性病变") == {"both"}
    assert sides("直径 3 cm 左右，左旋多巴治疗") == set()  # 左右 = "about"; 左旋 = levo-


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("右肺可见约3.5 cm的气胸。", None),  # same number, unit, side and term, in Chinese
        ("右肺气胸，约 3.5 厘米。", None),  # the unit's Chinese name
        ("心率 120 次/分。", None),  # bpm and its Chinese name
        ("气胸约 4 cm。", reasons.NUMBER_NOT_IN_SOURCE),  # an invented size
        ("气胸约 3.5 mm。", reasons.UNIT_NOT_IN_SOURCE),  # the right number with another unit
        ("左肺气胸。", reasons.SIDE_NOT_IN_SOURCE),  # the wrong side
        ("双侧气胸。", reasons.SIDE_NOT_IN_SOURCE),  # both sides, where the source names one
        ("提示肺癌。", reasons.GLOSSARY_TERM_NOT_IN_SOURCE),  # a diagnosis the source does not give
        ("图像显示气胸。", None),
    ],
)
def test_answer_checks_against_the_source(answer, expected):
    assert reason(answer) == expected


def test_a_synonym_of_a_source_term_is_grounded_and_the_first_failure_is_reported():
    source = "Findings consistent with pulmonary carcinoma."
    assert reason("考虑肺癌。", source) is None  # lung cancer / pulmonary carcinoma share 肺癌
    failure = check_answer("左肺 2 cm 肿块", SourceFacts.of(source, GLOSSARY), GLOSSARY)
    assert failure.reason == reasons.NUMBER_NOT_IN_SOURCE and failure.detail == "numbers not in the source: 2"


def test_without_a_glossary_terms_are_not_checked():
    assert check_answer("提示肺癌。", SourceFacts.of(SOURCE, None), None) is None


def test_parse_rounds_takes_a_list_a_fenced_list_or_an_object():
    text = '[{"question": "图中是什么？", "answer": "胸片。"}, {"question": "哪侧？", "answer": "右侧。"}]'
    expected = [("图中是什么？", "胸片。"), ("哪侧？", "右侧。")]
    assert parse_rounds(text) == expected
    assert parse_rounds(f"```json\n{text}\n```") == expected
    assert parse_rounds(f'{{"conversation": {text}}}') == expected


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '[{"question": "q"}]',
        '[{"question": "q", "answer": ""}]',
        '{"other": []}',
        '["q", "a"]',
    ],
)
def test_parse_rounds_refuses_anything_else(text):
    assert parse_rounds(text) is None


def test_the_glossary_is_the_build_translators_unless_the_settings_name_one(tmp_path):
    from qilin_med_vl.data.converse.config import ConverseConfig
    from qilin_med_vl.data.converse.run import load_converse_glossary

    build_csv, own_csv = tmp_path / "build.csv", tmp_path / "own.csv"
    build_csv.write_text("english,chinese\npneumothorax,气胸\n", encoding="utf-8")
    own_csv.write_text("english,chinese\nnodule,结节\n", encoding="utf-8")
    manifest = {"config": {"translator": {"backend": "openai", "glossary_csv": str(build_csv)}}}
    assert load_converse_glossary(ConverseConfig(), manifest).terms("右侧气胸和结节") == {("气胸",)}
    assert load_converse_glossary(ConverseConfig(glossary_csv=str(own_csv)), manifest).terms(
        "右侧气胸和结节"
    ) == {("结节",)}
    assert load_converse_glossary(ConverseConfig(), {"config": {"translator": {}}}) is None
