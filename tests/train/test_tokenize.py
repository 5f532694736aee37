"""Tokenization: exact input_ids/labels for 1- and 2-turn records, plain mode, truncation, and clear errors."""

from __future__ import annotations

import copy

import pytest
from PIL import Image

from qilin_med_vl.errors import DataError
from qilin_med_vl.train.records import parse_record
from qilin_med_vl.train.tokenize import (
    IGNORE_INDEX,
    ConversationTokenizer,
    SampleDropped,
    TemplateMismatchError,
)

IMAGE_TOKENS = 64  # the tiny preset: 64x64 images in 8-pixel patches
SYSTEM_TOKENS = 52  # '<s>' + the Vicuna v1 system line, tokenized by the tiny BPE


def record(*turns: str, image: str | None = "x.png", record_id: str = "r1") -> object:
    speakers = ["human", "gpt"] * len(turns)
    conversations = [{"from": who, "value": text} for who, text in zip(speakers, turns, strict=False)]
    raw = {"id": record_id, "conversations": conversations}
    if image:
        raw["image"] = image
    return parse_record(raw, "data.jsonl:7")


def readable(tokenizer, sample, start: int):
    """(tokens, labels as tokens or None) from position `start` on."""
    tokens = tokenizer.tokenizer.convert_ids_to_tokens(sample.input_ids[start:])
    labels = [
        None if x == IGNORE_INDEX else tokenizer.tokenizer.convert_ids_to_tokens(x)
        for x in sample.labels[start:]
    ]
    return tokens, labels


@pytest.fixture(scope="module")
def processor(tiny):
    return tiny[1]


@pytest.fixture(scope="module")
def chat(processor):
    return ConversationTokenizer(processor, "chat", max_length=400)


def test_image_token_count_comes_from_the_processor(chat):
    assert chat.num_image_tokens == IMAGE_TOKENS


def test_one_turn_exact_ids_and_labels(chat):
    sample = chat(record("<image>\n部位？", "胸部。"))
    tokens = chat.tokenizer.convert_ids_to_tokens(sample.input_ids)
    head = SYSTEM_TOKENS + 4
    assert tokens[0] == "<s>" and tokens[SYSTEM_TOKENS:head] == ["▁U", "SER", ":", "▁"]
    assert tokens[head : head + IMAGE_TOKENS] == ["<image>"] * IMAGE_TOKENS
    tail, labels = readable(chat, sample, head + IMAGE_TOKENS)
    assert tail == ["<0x0A>", "部", "位", "？", "▁A", "SS", "IST", "AN", "T", ":", "▁胸部", "。", "</s>"]
    assert labels == [None] * 10 + ["▁胸部", "。", "</s>"]
    assert all(label == IGNORE_INDEX for label in sample.labels[: head + IMAGE_TOKENS])
    assert not sample.truncated and sample.image == "x.png"


def test_two_turns_exact_ids_and_labels(chat):
    sample = chat(record("<image>\n部位？", "胸部。", "左侧？", "是。"))
    tail, labels = readable(chat, sample, SYSTEM_TOKENS + 4 + IMAGE_TOKENS)
    assert tail == [
        "<0x0A>", "部", "位", "？", "▁A", "SS", "IST", "AN", "T", ":", "▁胸部", "。", "</s>",
        "U", "SER", ":", "▁", "左侧", "？", "▁A", "SS", "IST", "AN", "T", ":", "▁", "是", "。", "</s>",
    ]  # fmt: skip
    assert labels == [None] * 10 + ["▁胸部", "。", "</s>"] + [None] * 12 + ["▁", "是", "。", "</s>"]


def test_system_line_is_the_vicuna_one(chat, processor):
    sample = chat(record("<image>\n部位？", "胸部。"))
    prefix = processor.tokenizer.decode(sample.input_ids[1:SYSTEM_TOKENS])
    assert prefix.startswith("A chat between a curious user") and prefix.endswith("questions.")


def test_matches_the_processor_own_expansion(chat, processor):
    """Our ids equal what LlavaProcessor produces for the same rendered text and an image."""
    sample = chat(record("<image>\n部位？", "胸部。", "左侧？", "是。"))
    text = processor.apply_chat_template(
        [
            {"role": "user", "content": "<image>\n部位？"},
            {"role": "assistant", "content": "胸部。"},
            {"role": "user", "content": "左侧？"},
            {"role": "assistant", "content": "是。"},
        ],
        tokenize=False,
    )
    reference = processor(images=[Image.new("RGB", (64, 64))], text=text)["input_ids"][0]
    assert sample.input_ids == list(reference)


def test_plain_mode_reproduces_llava_pretraining(processor):
    plain = ConversationTokenizer(processor, "plain", max_length=400)
    sample = plain(record("<image>\n请描述。", "胸部X光。"))
    tokens, labels = readable(plain, sample, 0)
    # BOS, the image, the caption and LLaVA's newline separator; no prompt, loss on caption + newline
    assert tokens == ["<s>"] + ["<image>"] * IMAGE_TOKENS + ["胸部", "X光", "。", "<0x0A>"]
    assert labels == [None] * (1 + IMAGE_TOKENS) + ["胸部", "X光", "。", "<0x0A>"]


def test_text_only_record(chat):
    sample = chat(record("什么是CT？", "断层扫描。", image=None))
    assert chat.image_token_id not in sample.input_ids
    answer = chat.tokenizer.decode([x for x in sample.labels if x != IGNORE_INDEX])
    assert answer == "断层扫描。</s>"


def test_truncation_after_expansion_keeps_the_image_and_cuts_answers(processor):
    full = ConversationTokenizer(processor, "chat", max_length=400)(
        record("<image>\n部位？", "胸部。", "左侧？", "是。")
    )
    first_answer_end = full.labels.index(
        IGNORE_INDEX, full.labels.index(next(x for x in full.labels if x != -100))
    )
    short = ConversationTokenizer(processor, "chat", max_length=first_answer_end)
    sample = short(record("<image>\n部位？", "胸部。", "左侧？", "是。"))
    assert sample.truncated and len(sample.input_ids) == first_answer_end
    assert sample.input_ids == full.input_ids[:first_answer_end]
    assert sample.input_ids.count(short.image_token_id) == IMAGE_TOKENS


def test_record_whose_image_would_be_cut_is_dropped(processor):
    tokenizer = ConversationTokenizer(processor, "chat", max_length=SYSTEM_TOKENS + 10)
    with pytest.raises(SampleDropped) as dropped:
        tokenizer(record("<image>\n部位？", "胸部。", record_id="long-one"))
    assert dropped.value.reason == "image_tokens_cut" and "long-one" in str(dropped.value)


def test_record_with_no_answer_left_is_dropped(processor):
    tokenizer = ConversationTokenizer(processor, "chat", max_length=SYSTEM_TOKENS + 4 + IMAGE_TOKENS + 5)
    with pytest.raises(SampleDropped) as dropped:
        tokenizer(record("<image>\n部位？", "胸部。"))
    assert dropped.value.reason == "no_answer_tokens"


def test_template_that_merges_answer_into_role_marker_raises_naming_the_record(processor):
    merging = (
        "{% for m in messages %}{% if m['role'] == 'user' %}Q: {{ m['content'] }} {% else %}A{{ m['content'] }}"
        "{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}A{% endif %}"
    )
    tokenizer = ConversationTokenizer(processor, "chat", 400)
    tokenizer.chat_template = merging
    with pytest.raises(TemplateMismatchError, match=r"record 'bad-7' \(data.jsonl:7\).*straddles"):
        tokenizer(record("hi", "nswer is yes", image=None, record_id="bad-7"))


def test_template_whose_generation_prompt_differs_from_training_raises(processor):
    mismatched = (
        "{% for m in messages %}{% if m['role'] == 'user' %}USER: {{ m['content'] }} {% else %}BOT: "
        "{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )
    tokenizer = ConversationTokenizer(processor, "chat", 400)
    tokenizer.chat_template = mismatched
    with pytest.raises(TemplateMismatchError, match="bad-8"):
        tokenizer(record("hi", "yes", image=None, record_id="bad-8"))


@pytest.mark.parametrize(
    ("turns", "image", "message"),
    [
        (("部位？", "胸部。"), "x.png", "0 <image> placeholders for 1 image"),
        (("<image>\n部位？", "胸部。"), None, "1 <image> placeholders for 0 image"),
    ],
)
def test_placeholder_count_must_match_images(chat, turns, image, message):
    with pytest.raises(DataError, match=message):
        chat(record(*turns, image=image))


def test_turns_must_alternate():
    with pytest.raises(DataError, match=r"data.jsonl:7.*alternate"):
        parse_record({"id": "x", "conversations": [{"from": "gpt", "value": "a"}]}, "data.jsonl:7")


def test_llm_own_template_writing_bos_gets_no_second_bos(tiny):
    processor = copy.deepcopy(tiny[1])
    processor.tokenizer.chat_template = (  # LLaMA-2 chat's shape: BOS written by the template itself
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
        "{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
    )
    tokenizer = ConversationTokenizer(processor, "llm", 400)
    sample = tokenizer(record("<image>\n部位？", "胸部。"))
    assert (
        sample.input_ids.count(processor.tokenizer.bos_token_id) == 1
        and sample.input_ids[0] == processor.tokenizer.bos_token_id
    )
    answer = processor.tokenizer.decode([x for x in sample.labels if x != IGNORE_INDEX])
    assert answer == "胸部。 </s>"
