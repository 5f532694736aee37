"""Quality checks on one English→Chinese translation; the first failed check gives the drop reason.

Checks, in order (each a reason code of translation_reasons.py):
- `translation_empty`: nothing but whitespace came back.
- `translation_not_chinese`: the Chinese share, CJK characters / (CJK characters + letters of
  English-looking words), is below `min_chinese_share`. English-looking words are lower-case or
  Capitalised Latin words of two letters or more that are not unit symbols; abbreviations (CT, MRI,
  T2WI, HbA1c) and panel labels (A, B) stay out of the count, since Chinese medical writing keeps them.
- `translation_number_missing`: every distinct number of the source (NFKC-normalised, "1,200" read as
  1200) must appear in the answer as a number.
- `translation_unit_missing`: every number the source writes with a unit ("10 mg", "5 mg/kg", "37 °C")
  must be followed in the answer by that unit, as the same symbol (any case) or a Chinese name (毫克).
- `translation_length_ratio_low` / `_high`: answer characters / source characters (spaces left out)
  outside [min_length_ratio, max_length_ratio]; only for sources of `length_check_min_chars` or more,
  since short captions ("CT", "Fig. 2") have no stable ratio.
- `translation_glossary_term_missing`: every glossary term of the source must appear in the answer as
  one of the glossary's Chinese renderings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qilin_med_vl.data.translation import reasons
from qilin_med_vl.data.translation.glossary import Glossary, normalize_text

# unit symbol → Chinese names accepted in its place; symbols match case-sensitively in the English source
UNIT_NAMES: dict[str, tuple[str, ...]] = {
    "%": ("%",),
    "mg": ("毫克",),
    "g": ("克",),
    "kg": ("千克", "公斤"),
    "µg": ("微克",),
    "μg": ("微克",),
    "ug": ("微克",),
    "mcg": ("微克",),
    "ng": ("纳克",),
    "pg": ("皮克",),
    "mL": ("毫升",),
    "ml": ("毫升",),
    "L": ("升",),
    "dL": ("分升",),
    "dl": ("分升",),
    "µL": ("微升",),
    "μL": ("微升",),
    "mm": ("毫米",),
    "cm": ("厘米",),
    "µm": ("微米",),
    "μm": ("微米",),
    "nm": ("纳米",),
    "mmHg": ("毫米汞柱",),
    "cmH2O": ("厘米水柱",),
    "°C": ("摄氏度", "度"),
    "Gy": ("戈瑞",),
    "cGy": ("厘戈瑞",),
    "mGy": ("毫戈瑞",),
    "Sv": ("希沃特",),
    "mSv": ("毫希沃特", "毫希"),
    "Hz": ("赫兹",),
    "kHz": ("千赫", "千赫兹"),
    "MHz": ("兆赫", "兆赫兹"),
    "mol": ("摩尔",),
    "mmol": ("毫摩尔",),
    "µmol": ("微摩尔",),
    "μmol": ("微摩尔",),
    "nmol": ("纳摩尔",),
    "mEq": ("毫当量",),
    "IU": ("国际单位",),
    "U": ("单位",),
    "kDa": ("千道尔顿",),
    "bpm": ("次/分", "次/分钟", "次每分钟"),
    "kV": ("千伏",),
    "kVp": ("千伏峰值",),
    "mAs": ("毫安秒",),
}
# units that only read as units after a slash ("mL/min", "mg/kg/d"): alone they are ordinary letters
PER_UNIT_NAMES: dict[str, tuple[str, ...]] = {
    "min": ("分钟", "分"),
    "h": ("小时", "时"),
    "s": ("秒",),
    "d": ("天", "日"),
    "day": ("天", "日"),
    "m2": ("平方米",),
}
_ALL_UNIT_NAMES = {**UNIT_NAMES, **PER_UNIT_NAMES}


def alternation(symbols) -> str:
    """A regex alternation of literal strings, longest first, so "mmHg" is tried before "mm"."""
    return "|".join(re.escape(symbol) for symbol in sorted(symbols, key=len, reverse=True))


NUMBER_PATTERN = r"\d+(?:,\d{3})+(?![\d])|\d+(?:\.\d+)?"  # "1,200" as one number, "0.5", "12"
_NUMBER_RE = re.compile(NUMBER_PATTERN)
_QUANTITY_RE = re.compile(
    rf"(?P<number>{NUMBER_PATTERN})\s?(?P<unit>(?:{alternation(UNIT_NAMES)})"
    rf"(?:/(?:{alternation(_ALL_UNIT_NAMES)}))*)(?![A-Za-z])"
)
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD_RE = re.compile(r"[A-Za-z]+")
_ENGLISH_LOOKING_RE = re.compile(r"[a-z]{2,}|[A-Z][a-z]{2,}")
_UNIT_SYMBOLS_LOWER = {symbol.lower() for symbol in _ALL_UNIT_NAMES}


@dataclass(frozen=True)
class CheckThresholds:
    min_chinese_share: float = 0.5
    min_length_ratio: float = 0.1
    max_length_ratio: float = 1.2
    length_check_min_chars: int = 30


@dataclass(frozen=True)
class CheckFailure:
    reason: str  # a code of translation_reasons
    detail: str  # what exactly failed, told to the model on the retry

    def instruction(self) -> str:
        return f"{reasons.REASON_DESCRIPTIONS[self.reason]} ({self.detail})"


def canonical_number(text: str) -> str:
    """A number as written, without thousands separators: 1,200 → 1200; 0.50 stays 0.50."""
    return text.replace(",", "")


def _without_units(text: str) -> str:
    # digits inside a unit ("mg/m2", "cmH2O") belong to the unit, which the unit check covers
    return _QUANTITY_RE.sub(lambda m: m.group("number") + " ", text)


def _without_thousands_separators(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)


def numbers_in(text: str) -> list[str]:
    """Distinct numbers of `text` (units left out) in order of appearance, canonical."""
    plain = _without_units(normalize_text(text))
    return list(dict.fromkeys(canonical_number(m.group(0)) for m in _NUMBER_RE.finditer(plain)))


def quantities_in(text: str) -> list[tuple[str, str]]:
    """Distinct (number, unit) pairs the text writes as a number followed by a unit symbol."""
    found = (
        (canonical_number(m.group("number")), m.group("unit"))
        for m in _QUANTITY_RE.finditer(normalize_text(text))
    )
    return list(dict.fromkeys(found))


def chinese_share(text: str) -> float:
    """CJK characters / (CJK characters + letters of English-looking words).

    1.0 for a text with neither ("3 cm", "(A) CT"): nothing in it is left in English.
    """
    text = normalize_text(text)
    cjk = len(_CJK_RE.findall(text))
    english_letters = sum(
        len(word)
        for word in _LATIN_WORD_RE.findall(text)
        if _ENGLISH_LOOKING_RE.fullmatch(word) and word.lower() not in _UNIT_SYMBOLS_LOWER
    )
    total = cjk + english_letters
    return cjk / total if total else 1.0


def _unit_pattern(unit: str) -> str:
    parts = []
    for symbol in unit.split("/"):
        names = (symbol, *_ALL_UNIT_NAMES.get(symbol, ()))
        parts.append(f"(?:{alternation(names)})")
    return r"\s*(?:/|每)\s*".join(parts)


def _has_quantity(output: str, number: str, unit: str) -> bool:
    pattern = rf"(?<![\d.]){re.escape(number)}\s*(?:{_unit_pattern(unit)})"
    return re.search(pattern, output, flags=re.IGNORECASE) is not None


def _output_numbers(output: str) -> set[str]:
    return {canonical_number(m.group(0)) for m in _NUMBER_RE.finditer(_without_units(output))}


def _visible_length(text: str) -> int:
    return len("".join(text.split()))


def check_translation(
    source: str, output: str, thresholds: CheckThresholds, glossary: Glossary | None = None
) -> CheckFailure | None:
    """The first check `output` fails as a translation of `source`, or None when it passes them all."""
    output = _without_thousands_separators(normalize_text(output).strip())
    if not output:
        return CheckFailure(reasons.EMPTY_OUTPUT, "the answer has no text")

    share = chinese_share(output)
    if share < thresholds.min_chinese_share:
        return CheckFailure(
            reasons.NOT_CHINESE,
            f"Chinese share {share:.2f} < {thresholds.min_chinese_share:.2f}; translate every English word",
        )

    present = _output_numbers(output)
    missing = [number for number in numbers_in(source) if number not in present]
    if missing:
        return CheckFailure(
            reasons.NUMBER_MISSING, f"keep these numbers exactly, as digits: {', '.join(missing)}"
        )

    for number, unit in quantities_in(source):
        if not _has_quantity(output, number, unit):
            return CheckFailure(reasons.UNIT_MISSING, f"write {number} {unit} with its unit {unit}")

    source_length = _visible_length(source)
    if source_length >= thresholds.length_check_min_chars:
        ratio = _visible_length(output) / source_length
        if ratio < thresholds.min_length_ratio:
            return CheckFailure(
                reasons.LENGTH_RATIO_LOW,
                f"length ratio {ratio:.2f} < {thresholds.min_length_ratio}; translate the whole text",
            )
        if ratio > thresholds.max_length_ratio:
            return CheckFailure(
                reasons.LENGTH_RATIO_HIGH,
                f"length ratio {ratio:.2f} > {thresholds.max_length_ratio}; answer with the translation only",
            )

    if glossary is not None:
        for match in glossary.matches(source):
            if not any(rendering in output for rendering in match.chinese):
                return CheckFailure(
                    reasons.GLOSSARY_TERM_MISSING, f"render {match.english!r} as {match.chinese[0]}"
                )
    return None
