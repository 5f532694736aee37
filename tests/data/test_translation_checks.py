"""Quality checks and glossary of the English→Chinese translator: each check catches what it names and
passes real-looking Chinese medical translations."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from qilin_med_vl.data.translation import reasons
from qilin_med_vl.data.translation.checks import (
    CheckThresholds,
    check_translation,
    chinese_share,
    numbers_in,
    quantities_in,
)
from qilin_med_vl.data.translation.glossary import (
    Glossary,
    cmekg_available,
    cmekg_pairs,
    load_cmekg_glossary,
    load_glossary_csv,
)
from qilin_med_vl.errors import DataError

DEFAULTS = CheckThresholds()
SOURCE = "A 45-year-old man received 10 mg/kg of drug, and his blood pressure was 120/80 mmHg after 2 days."
GOOD = "一名45岁男性接受了10 mg/kg的药物治疗，2天后血压为120/80毫米汞柱。"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "translation.md"


def test_numbers_and_quantities_are_read_as_written():
    assert numbers_in(SOURCE) == ["45", "10", "120", "80", "2"]
    assert quantities_in(SOURCE) == [("10", "mg/kg"), ("80", "mmHg")]
    # thousands separators and full-width digits are the same number; "mg/m²" keeps its 2 in the unit
    assert numbers_in("1,200 cells in １２ fields, 5 mg/m²") == ["1200", "12", "5"]
    assert quantities_in("37 °C, 37℃ and 25%") == [("37", "°C"), ("25", "%")]


def test_a_faithful_translation_passes_every_check():
    assert check_translation(SOURCE, GOOD, DEFAULTS) is None
    # units may be written in Chinese, numbers with thousands separators
    assert (
        check_translation(
            "The mass measured 12 mm with 1200 cells.", "肿块大小12毫米，细胞数1,200个。", DEFAULTS
        )
        is None
    )


def test_english_answer_fails_as_not_chinese_but_abbreviations_are_allowed():
    failure = check_translation(SOURCE, SOURCE, DEFAULTS)
    assert failure is not None and failure.reason == reasons.NOT_CHINESE
    # CT, MRI, T2WI and panel labels are how Chinese medical writing spells them: still Chinese
    assert chinese_share("(A) 增强CT显示肝脏病变；(B) MRI的T2WI序列呈高信号") == 1.0
    # a source that is only a quantity or labels may come back unchanged
    assert check_translation("3 cm", "3 cm", DEFAULTS) is None
    assert chinese_share("(A) CT") == 1.0
    half = "患者的 pneumothorax 被发现"
    assert 0.0 < chinese_share(half) < 0.5


def test_missing_number_is_named():
    failure = check_translation(SOURCE, GOOD.replace("120/80", "正常"), DEFAULTS)
    assert failure is not None
    assert failure.reason == reasons.NUMBER_MISSING
    assert "120" in failure.detail and "80" in failure.detail


def test_changed_unit_fails_as_unit_missing():
    source = "The patient received 10 mg of morphine."
    assert check_translation(source, "患者接受了10毫克吗啡。", DEFAULTS) is None
    assert check_translation(source, "患者接受了10 MG吗啡。", DEFAULTS) is None
    failure = check_translation(source, "患者接受了10克吗啡。", DEFAULTS)
    assert failure is not None and failure.reason == reasons.UNIT_MISSING and "mg" in failure.detail


def test_length_ratio_bounds_apply_to_long_sources_only():
    long_source = "Axial contrast-enhanced computed tomography of the abdomen shows a large hepatic mass."
    too_short = check_translation(long_source, "肝。", DEFAULTS)
    assert too_short is not None and too_short.reason == reasons.LENGTH_RATIO_LOW
    padded = "腹部增强CT轴位图像显示肝脏巨大肿块。" * 6
    too_long = check_translation(long_source, padded, DEFAULTS)
    assert too_long is not None and too_long.reason == reasons.LENGTH_RATIO_HIGH
    # a short caption has no stable ratio: a one-character answer is fine
    assert check_translation("Chest X-ray", "胸片", DEFAULTS) is None


def test_empty_answer():
    failure = check_translation("Chest X-ray", "   ", DEFAULTS)
    assert failure is not None and failure.reason == reasons.EMPTY_OUTPUT


def test_glossary_terms_must_use_the_glossary_chinese():
    glossary = Glossary([("pneumothorax", "气胸"), ("tension pneumothorax", "张力性气胸")])
    source = "Chest radiograph shows a Tension Pneumothorax on the left."
    matches = glossary.matches(source)
    assert [(m.english, m.chinese) for m in matches] == [("Tension Pneumothorax", ("张力性气胸",))]
    assert check_translation(source, "胸片显示左侧张力性气胸。", DEFAULTS, glossary) is None
    failure = check_translation(source, "胸片显示左侧张力性肺萎陷。", DEFAULTS, glossary)
    assert failure is not None
    assert failure.reason == reasons.GLOSSARY_TERM_MISSING and "张力性气胸" in failure.detail


def test_glossary_csv(tmp_path: Path):
    path = tmp_path / "glossary.csv"
    path.write_text(
        '\ufeffenglish,chinese\npneumothorax,气胸\n"fracture, comminuted",粉碎性骨折\npneumothorax,气胸症\n',
        encoding="utf-8",
    )
    glossary = load_glossary_csv(path)
    assert len(glossary) == 2
    assert glossary.matches("pneumothorax")[0].chinese == ("气胸", "气胸症")
    assert glossary.matches("a fracture, comminuted")[0].chinese == ("粉碎性骨折",)

    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("en,zh\nfoo,福\n", encoding="utf-8")
    with pytest.raises(DataError, match="english,chinese"):
        load_glossary_csv(bad_header)
    bad_row = tmp_path / "bad_row.csv"
    bad_row.write_text("english,chinese\nfoo\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        load_glossary_csv(bad_row)
    with pytest.raises(DataError, match="does not exist"):
        load_glossary_csv(tmp_path / "missing.csv")


def test_user_glossary_replaces_the_renderings_of_the_same_term():
    base = Glossary([("proteinuria", "尿蛋白"), ("dementia", "痴呆")])
    base.update(Glossary([("Proteinuria", "蛋白尿")]))
    assert {m.english: m.chinese for m in base.matches("proteinuria and dementia")} == {
        "proteinuria": ("蛋白尿",),
        "dementia": ("痴呆",),
    }


def test_cmekg_pairs_from_the_entity_dict_format():
    entities = {
        "痴呆": {"英文名称": ["dementia"], "相关症状": ["健忘"]},
        "诺德伦": {"英文名": ["Oxaprozin Tablets"], "通用名": ["奥沙普秦片"]},  # brand → generic name
        "单纯疱疹感染": {"英文名称": ["herpes simplex", "HS"]},  # abbreviation too short to trust
        "阿咖酚散": {"英文名": ["Paracetamol,Caffeine and Aspirin Powder"]},  # ambiguous comma
        "缺血缺氧性脑病": {"英文名称": ["hypoxic—ischemic encephalopathy"]},
        "小儿囊性纤维性变": {"英文名称": ["cystic fibrosis"]},  # a children's entity under the plain name
        "新生儿黄疸": {"英文名称": ["neonatal jaundice"]},  # the English names the population: kept
    }
    assert sorted(cmekg_pairs(entities)) == sorted(
        [
            ("dementia", "痴呆"),
            ("Oxaprozin Tablets", "奥沙普秦片"),
            ("herpes simplex", "单纯疱疹感染"),
            ("hypoxic-ischemic encephalopathy", "缺血缺氧性脑病"),
            ("neonatal jaundice", "新生儿黄疸"),
        ]
    )


@pytest.mark.skipif(
    not cmekg_available(), reason="pycmekg is an optional package (installed by the dev extra)"
)
def test_cmekg_glossary_loads_offline_from_the_installed_package():
    glossary = load_cmekg_glossary()
    assert len(glossary) > 10_000
    found = {m.english.lower(): m.chinese for m in glossary.matches("Dementia with syphilitic arthritis")}
    assert "痴呆" in found["dementia"]
    assert "梅毒性关节炎" in found["syphilitic arthritis"]


def test_cmekg_reader_refuses_pickles_that_would_run_code(tmp_path: Path):
    from qilin_med_vl.data.translation.glossary import _PlainDataUnpickler

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": Path("/")}))
    with path.open("rb") as handle, pytest.raises(pickle.UnpicklingError, match="plain data only"):
        _PlainDataUnpickler(handle).load()


def test_docs_explain_every_reason_code():
    text = DOCS.read_text(encoding="utf-8")
    missing = [code for code in reasons.REASON_DESCRIPTIONS if f"`{code}`" not in text]
    assert missing == []
