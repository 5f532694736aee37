"""The tokenized-records cache: linear-time answer spans equal the exact per-prefix ones, a second start
reuses the cache, worker processes give the same rows, edits invalidate it, and drops are counted."""

from __future__ import annotations

import json

import pytest

from qilin_med_vl.train.records import parse_record
from qilin_med_vl.train.token_cache import tokenized_rows
from qilin_med_vl.train.tokenize import ConversationTokenizer

LLAMA2_LIKE = (  # a template with BOS written by the template and a space before each answer's eos
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
)
IRREGULAR = (  # ends each answer with as many newlines as its turn number: the per-prefix method must run
    "{% for m in messages %}{% if m['role'] == 'user' %}Q: {{ m['content'] }}\n{% else %}"
    "A: {{ m['content'] }}{{ eos_token }}{{ '\n' * loop.index }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}A:{% endif %}"
)


def conversation(turns: int, image: bool = True):
    texts = []
    for index in range(turns):
        question = f"第{index}个问题？" + (" <image>" if image and index == 0 else "")
        texts += [question, f"答案{index}，" * (index + 1)]
    speakers = ["human", "gpt"] * turns
    raw = {
        "id": f"c{turns}",
        "conversations": [{"from": s, "value": t} for s, t in zip(speakers, texts, strict=True)],
    }
    if image:
        raw["image"] = "x.png"
    return parse_record(raw, "data.jsonl:1")


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


@pytest.mark.parametrize("template", ["chat", "llm", "irregular"])
def test_linear_spans_equal_the_exact_prefix_spans(processor, template):
    tokenizer = ConversationTokenizer(processor, "chat", 2048)
    if template == "llm":
        tokenizer.chat_template = LLAMA2_LIKE
    if template == "irregular":
        tokenizer.chat_template = IRREGULAR
    for turns in (1, 2, 3, 6):
        record = conversation(turns)
        placed = tokenizer.placed(record.turns)
        text, spans, _ = tokenizer.answer_spans(placed, record.name)
        assert (text, spans) == tokenizer.spans_by_prefixes(placed, record.name), turns
        assert len(spans) == turns
        sample = tokenizer(record)
        supervised = tokenizer.tokenizer.decode([t for t in sample.labels if t != -100])
        assert all(f"答案{i}，" * (i + 1) in supervised for i in range(turns))


def write_records(path, count: int, missing_image: bool = False):
    rows = []
    for index in range(count):
        image = "missing.png" if missing_image and index == 0 else "x.png"
        rows.append({"id": f"r{index}", "image": image, "conversations": [
            {"from": "human", "value": f"<image>\n问题{index}"}, {"from": "gpt", "value": f"回答{index}"}]})  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_second_start_reuses_the_cache_and_edits_invalidate_it(processor, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    data = tmp_path / "data.jsonl"
    write_records(data, 12, missing_image=True)
    tokenizer = ConversationTokenizer(processor, "chat", 400)
    first = tokenized_rows([data], tmp_path, tokenizer, tmp_path / "cache")
    second = tokenized_rows([data], tmp_path, tokenizer, tmp_path / "cache")
    assert (first.reused, second.reused) == (False, True) and first.folder == second.folder
    assert second.rows.to_dict() == first.rows.to_dict()
    assert second.rows["drop_reason"][:2] == ["image_missing", None]  # a missing image is a counted drop

    # another max_length, another template: another cache entry
    other = ConversationTokenizer(processor, "chat", 300)
    assert tokenized_rows([data], tmp_path, other, tmp_path / "cache").folder != first.folder
    write_records(data, 13)
    edited = tokenized_rows([data], tmp_path, tokenizer, tmp_path / "cache")
    assert not edited.reused and len(edited.rows) == 13


def test_worker_processes_give_the_same_rows(processor, data_dir, tmp_path):
    tokenizer = ConversationTokenizer(processor, "chat", 400)
    files = [data_dir / "instruct.jsonl"]
    one = tokenized_rows(files, data_dir, tokenizer, tmp_path / "a", num_proc=1)
    two = tokenized_rows(files, data_dir, tokenizer, tmp_path / "b", num_proc=2)
    assert len(one.rows.cache_files) == 1 and len(two.rows.cache_files) == 2  # two workers wrote a shard each
    assert two.rows.to_dict() == one.rows.to_dict()
