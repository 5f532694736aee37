"""Answer text normalisation and tokenisation shared by every metric.

`normalize_text`: Unicode NFKC (full-width letters, digits and punctuation become half-width), traditional
to simplified Chinese (OpenCC `t2s`), case folding, surrounding space removed.
`words`: the normalised text's words without punctuation or spaces: jieba words (dictionary only, HMM
off, so segmentation never depends on a statistical guess) when the text holds Chinese, else English
words (letters of any script and digits, with an inner apostrophe kept: "isn't").
`canonical_words`: `words` with synonym forms replaced by their canonical token (longest form first,
matched on whole words) and, for English, the articles a/an/the dropped.
`characters`: a word list split into single Chinese characters (Latin words stay whole), for the
character-level variants of the Chinese metrics.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import cache

import jieba
import opencc

from qilin_med_vl.eval.lexicons import synonyms

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
ENGLISH_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")  # letters of any script and digits: "β", "isn't"
ARTICLES = frozenset({"a", "an", "the"})
MAX_PHRASE_WORDS = 4  # the longest lexicon or synonym form spans this many words
CLAUSE_BREAK = re.compile(r"[,.;!?。，、；！？\n]")


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "")
    return _t2s().convert(text).casefold().strip()


def _is_word(token: str) -> bool:
    return any(char.isalnum() for char in token)


def words(text: str) -> list[str]:
    """The words of `text` after `normalize_text`, punctuation and spaces left out."""
    text = normalize_text(text)
    if CJK.search(text):
        return [token for token in jieba.lcut(text, HMM=False) if _is_word(token.strip())]
    return ENGLISH_WORD.findall(text)


def join_words(tokens: Sequence[str]) -> str:
    """Words back into one string: a space between two non-Chinese words, nothing next to Chinese."""
    text = ""
    for token in tokens:
        if text and not CJK.search(token) and not CJK.match(text[-1]):
            text += " "
        text += token
    return text


def match_phrases(tokens: Sequence[str], table: Mapping[str, str]) -> list[tuple[int, int, str]]:
    """(start, end, value) for each table form found in `tokens`, scanning left to right, longest first.

    Forms are compared as `join_words` of a run of whole words, so a form never matches part of a word.
    """
    found = []
    start = 0
    while start < len(tokens):
        for end in range(min(len(tokens), start + MAX_PHRASE_WORDS), start, -1):
            value = table.get(join_words(tokens[start:end]))
            if value is not None:
                found.append((start, end, value))
                start = end
                break
        else:
            start += 1
    return found


@cache
def _synonym_table() -> dict[str, str]:
    """Synonym forms written as `join_words(words(form))`, the shape `match_phrases` compares."""
    return {join_words(words(form)): canonical for form, canonical in synonyms().canonical_of_form.items()}


def canonical_words(text: str) -> list[str]:
    tokens = words(text)
    result: list[str] = []
    position = 0
    for start, end, canonical in match_phrases(tokens, _synonym_table()):
        result.extend(tokens[position:start])
        result.append(canonical)
        position = end
    result.extend(tokens[position:])
    return [token for token in result if token not in ARTICLES]


def characters(tokens: Sequence[str]) -> list[str]:
    """Chinese words split into characters; Latin words (and canonical synonym tokens) stay whole."""
    result = []
    for token in tokens:
        result.extend(list(token) if CJK.search(token) else [token])
    return result


def first_clause(text: str) -> str:
    """The normalised text up to its first clause break (comma, full stop, ...), skipping empty clauses."""
    for clause in CLAUSE_BREAK.split(normalize_text(text)):
        if clause.strip():
            return clause.strip()
    return ""
