"""The Engine: same answers as plain transformers, deterministic greedy decoding, batches equal to
sequential calls, streaming equal to the full answer, multi-turn chats that encode the picture once."""

from __future__ import annotations

import pytest
import torch

from qilin_med_vl.infer.conversation import Conversation
from qilin_med_vl.infer.engine import Engine, GenerationRequest, RequestError, SamplingSettings

from .infer_helpers import VisionCalls, draw_picture, user_message

GREEDY_12 = SamplingSettings(max_new_tokens=12)
QUESTION = "这张图像显示了什么？"


def reference_tokens(engine: Engine, image, question: str, new_tokens: int) -> list[int]:
    """Greedy tokens from transformers' own LLaVA forward (pixel_values in, no project code)."""
    processor = engine.processor
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=[image], text=prompt, return_tensors="pt")
    output = engine.model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)
    tokens = output[0, inputs["input_ids"].shape[1] :].tolist()
    return tokens[: tokens.index(engine.eos_token_id)] if engine.eos_token_id in tokens else tokens


def test_greedy_answer_equals_plain_transformers_generate(engine):
    image = draw_picture(2)
    completion = engine.generate([user_message(QUESTION, image)], GREEDY_12)
    assert completion.token_ids == reference_tokens(engine, image, QUESTION, 12)
    assert completion.text == engine.tokenizer.decode(completion.token_ids, skip_special_tokens=True).lstrip()
    assert completion.completion_tokens > 0


def test_greedy_is_deterministic(engine):
    messages = [user_message(QUESTION, draw_picture(3))]
    first = engine.generate(messages, GREEDY_12)
    second = engine.generate(messages, GREEDY_12)
    assert first.token_ids == second.token_ids and first.text == second.text


def test_batch_of_eight_equals_eight_sequential_calls(engine):
    limits = [4, 12, 7, 12, 1, 9, 12, 5]
    requests = [
        GenerationRequest(
            [user_message(f"问题 {i}：病灶在哪里？", draw_picture(i) if i != 5 else None)],
            SamplingSettings(max_new_tokens=limit),
        )
        for i, limit in enumerate(limits)
    ]
    batched = engine.generate_batch(requests)
    sequential = [engine.generate_batch([request])[0] for request in requests]
    assert [c.token_ids for c in batched] == [c.token_ids for c in sequential]
    assert [c.prompt_tokens for c in batched] == [c.prompt_tokens for c in sequential]
    for completion, limit in zip(batched, limits, strict=True):
        assert len(completion.token_ids) <= limit
        if completion.finish_reason == "length":
            assert len(completion.token_ids) == limit


def test_streamed_pieces_concatenate_to_the_answer(engine):
    messages = [user_message("请描述图中的异常。", draw_picture(4))]
    settings = SamplingSettings(max_new_tokens=24)
    pieces = list(engine.stream(messages, settings))
    assert len(pieces) > 1
    assert "".join(pieces) == engine.generate(messages, settings).text


def test_batch_streaming_reports_each_row(engine):
    requests = [
        GenerationRequest([user_message(f"第{i}个问题", draw_picture(i))], GREEDY_12) for i in range(3)
    ]
    pieces: dict[int, list[str]] = {0: [], 1: [], 2: []}
    completions = engine.generate_batch(requests, on_text=lambda row, text: pieces[row].append(text))
    assert ["".join(pieces[i]) for i in range(3)] == [c.text for c in completions]


def test_multi_turn_encodes_the_picture_once(tiny_checkpoint):
    engine = Engine.from_pretrained(tiny_checkpoint)  # fresh, empty feature cache
    counter = VisionCalls(engine.model)
    try:
        conversation = Conversation(image=draw_picture(5))
        for question in ["这是什么检查？", "病灶在左侧还是右侧？", "请给出诊断印象。"]:
            answer = engine.generate(conversation.messages(question), GREEDY_12).text
            conversation.record(question, answer)
        assert (counter.calls, counter.images) == (1, 1)
        conversation = Conversation(image=draw_picture(6))  # a new picture is encoded
        engine.generate(conversation.messages("这是什么？"), GREEDY_12)
        assert (counter.calls, counter.images) == (2, 2)
    finally:
        counter.close()


def test_cached_features_give_the_same_answer_as_recomputing(tiny_checkpoint, engine):
    uncached = Engine(engine.model, engine.processor, image_cache_size=0)
    conversation = Conversation(image=draw_picture(7))
    conversation.record("这是什么检查？", "这是一张胸部X光片。")
    messages = conversation.messages("肺野是否清晰？")
    engine.generate(messages, GREEDY_12)  # warm the cache
    assert engine.generate(messages, GREEDY_12).token_ids == uncached.generate(messages, GREEDY_12).token_ids


def test_images_of_one_batch_are_encoded_in_one_vision_call(tiny_checkpoint):
    engine = Engine.from_pretrained(tiny_checkpoint)
    counter = VisionCalls(engine.model)
    try:
        same = draw_picture(1)
        requests = [
            GenerationRequest([user_message("这是什么？", image)], GREEDY_12)
            for image in [same, draw_picture(2), same]
        ]
        engine.generate_batch(requests)
        assert (counter.calls, counter.images) == (1, 2)  # the repeated picture is encoded once
    finally:
        counter.close()


def test_seeded_sampling_is_reproducible(engine):
    messages = [user_message(QUESTION, draw_picture(8))]
    settings = SamplingSettings(max_new_tokens=16, temperature=1.0, top_p=0.95, seed=1234)
    first = engine.generate(messages, settings)
    again = engine.generate(messages, settings)
    other = engine.generate(
        messages, SamplingSettings(max_new_tokens=16, temperature=1.0, top_p=0.95, seed=4321)
    )
    assert first.token_ids == again.token_ids
    assert first.token_ids != other.token_ids
    state = torch.random.get_rng_state()
    engine.generate(messages, settings)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's random stream is untouched


def test_requests_the_engine_refuses(engine):
    image = draw_picture(1)
    with pytest.raises(RequestError, match="last message must come from the user"):
        engine.generate([user_message("你好"), {"role": "assistant", "content": "好"}])
    with pytest.raises(RequestError, match="context"):
        engine.generate(
            [user_message(QUESTION, image)], SamplingSettings(max_new_tokens=engine.context_length)
        )
    with pytest.raises(RequestError, match="only user messages may hold images"):
        engine.generate(
            [{"role": "assistant", "content": [{"type": "image", "image": image}]}, user_message("?")]
        )
    with pytest.raises(RequestError, match="image placeholder"):
        engine.generate([user_message("<image> 这是什么？", image)])
    with pytest.raises(RequestError, match="temperature"):
        SamplingSettings(temperature=-1)
