"""The tiny preset: offline tokenizer coverage, determinism, and the LLaVA choices baked into the model."""

import json
from importlib import resources

import numpy as np
import pytest
import torch
from PIL import Image

from qilin_med_vl.model.chat_template import VICUNA_V1_SYSTEM
from qilin_med_vl.model.checkpoint import create_tiny
from qilin_med_vl.model.compose import VISION_FEATURE_LAYER
from qilin_med_vl.model.projector import frozen_projector_parameters, projector_type
from qilin_med_vl.model.tiny import TINY_VISION
from qilin_med_vl.model.tiny_tokenizer import BYTE_TOKENS, build_tiny_tokenizer, shipped_training_text


def test_tokenizer_covers_shipped_text_without_fallback():
    tokenizer = build_tiny_tokenizer()
    byte_ids = set(tokenizer.convert_tokens_to_ids(BYTE_TOKENS))
    # Newlines are byte pieces in LLaMA's vocabulary too; every visible character must be a real piece.
    for line in (part for text in shipped_training_text() for part in text.split("\n") if part.strip()):
        ids = tokenizer(line, add_special_tokens=False).input_ids
        assert tokenizer.unk_token_id not in ids
        assert not byte_ids & set(ids), f"byte fallback used for {line!r}"
        assert tokenizer.decode(ids) == line.strip()


def test_tokenizer_never_unknown_and_deterministic():
    first, second = build_tiny_tokenizer(), build_tiny_tokenizer()
    assert first.get_vocab() == second.get_vocab()
    rare = "鳕鱼 𝔸 ✓"  # characters outside the shipped text fall back to bytes, never to <unk>
    ids = first(rare, add_special_tokens=False).input_ids
    assert first.unk_token_id not in ids
    assert first.decode(ids) == rare


def test_prompt_pools_are_packaged():
    pools = json.loads(
        resources.files("qilin_med_vl.resources").joinpath("prompt_templates.json").read_text("utf-8")
    )
    assert (len(pools["alignment"]), len(pools["instruction"])) == (22, 7)


def test_same_seed_same_weights_other_seed_other_weights():
    a, _ = create_tiny(seed=3)
    b, _ = create_tiny(seed=3)
    c, _ = create_tiny(seed=4)
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_linear_projector_is_exactly_one_linear_layer(tiny_checkpoint):
    _, model, _ = tiny_checkpoint
    projector = model.model.multi_modal_projector
    features = torch.randn(2, 5, projector.linear_1.in_features)
    with torch.no_grad():
        out = projector(features)
        if projector_type(model.config) == "linear":
            torch.testing.assert_close(out, projector.linear_1(features), atol=0, rtol=0)
            assert frozen_projector_parameters(model) == [
                "model.multi_modal_projector.linear_2.weight",
                "model.multi_modal_projector.linear_2.bias",
            ]
        else:
            reference = projector.linear_2(torch.nn.functional.gelu(projector.linear_1(features)))
            torch.testing.assert_close(out, reference, atol=0, rtol=0)
            assert frozen_projector_parameters(model) == []


def test_image_features_are_penultimate_layer_patches(tiny_checkpoint):
    _, model, processor = tiny_checkpoint
    pixels = processor.image_processor(Image.new("RGB", (64, 64), (90, 30, 200)), return_tensors="pt")[
        "pixel_values"
    ]
    with torch.no_grad():
        hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[
            -2
        ]  # (1, 1+64, 64)
        expected = model.model.multi_modal_projector(hidden[:, 1:])  # CLS dropped
        ours = model.model.get_image_features(pixel_values=pixels)
    ours = ours.pooler_output if hasattr(ours, "pooler_output") else ours
    ours = torch.cat(list(ours), dim=0) if isinstance(ours, (list, tuple)) else ours
    torch.testing.assert_close(ours.reshape(expected.shape), expected)


def test_images_are_padded_to_square_with_the_mean_colour(tiny_checkpoint):
    _, _, processor = tiny_checkpoint
    image_processor = processor.image_processor
    wide = Image.new("RGB", (128, 32), (255, 255, 255))  # white band in the middle after padding
    pixels = image_processor(wide, return_tensors="pt")["pixel_values"][0]  # (3, 64, 64)
    mean = torch.tensor(image_processor.image_mean)
    std = torch.tensor(image_processor.image_std)
    padded = (torch.tensor([int(m * 255) for m in image_processor.image_mean]) / 255 - mean) / std
    white = (1 - mean) / std
    torch.testing.assert_close(pixels[:, 0, 32], padded, atol=1e-3, rtol=0)  # top rows: padding
    torch.testing.assert_close(pixels[:, 32, 32], white, atol=1e-3, rtol=0)  # centre: the image


def test_vicuna_v1_template_matches_llava_conversation_format(tiny_checkpoint):
    _, _, processor = tiny_checkpoint
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "病灶在哪一侧？"}]},
        {"role": "assistant", "content": "右侧。"},
        {"role": "user", "content": "是什么模态？"},
    ]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True)
    # LLaVA conv_vicuna_v1: system + " " + "USER: " + msg + " " + "ASSISTANT: " + answer + "</s>" ...
    assert rendered == (
        f"{VICUNA_V1_SYSTEM} USER: <image>\n病灶在哪一侧？ ASSISTANT: 右侧。</s>USER: 是什么模态？ ASSISTANT:"
    )


def test_generation_is_deterministic(tiny_checkpoint):
    _, model, processor = tiny_checkpoint
    image = Image.fromarray(np.full((50, 70, 3), 120, dtype=np.uint8))
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "描述这张图。"}]}],
        add_generation_prompt=True,
    )
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    runs = [model.generate(**inputs, max_new_tokens=5, do_sample=False) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("projector", ["mlp2x_gelu", "linear"])
def test_cli_creates_tiny_model(tmp_path, projector):
    from transformers import LlavaForConditionalGeneration

    from qilin_med_vl.cli import main

    assert (
        main(["model", "create", "--preset", "tiny", "--projector", projector, "--out", str(tmp_path)]) == 0
    )
    loaded = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    assert projector_type(loaded.config) == projector
    assert _column_accuracy(loaded.model.vision_tower) == 1.0  # the position codes survive the CLI's save
    reference, _ = create_tiny(projector=projector, seed=0)
    torch.testing.assert_close(loaded.lm_head.weight, reference.lm_head.weight, atol=0, rtol=0)


def _column_accuracy(tower) -> float:
    """How often the column of a patch of the bottom two rows is the nearest column centroid of the
    rows above, from the features the projector reads, on a uniform picture: each patch alike but for
    where it is."""
    side = TINY_VISION["image_size"]
    patches = side // TINY_VISION["patch_size"]  # 8 a row
    pixels = torch.zeros(1, 3, side, side)
    with torch.no_grad():
        hidden = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[VISION_FEATURE_LAYER]
    grid = hidden[0, 1:].reshape(patches, patches, -1)  # (row, column, feature), class token dropped
    centroids = grid[:-2].mean(dim=0)  # (column, feature)
    nearest = torch.cdist(grid[-2:].reshape(2 * patches, -1), centroids).argmin(dim=1)  # (2 * patches,)
    return (nearest == torch.arange(patches).repeat(2)).float().mean().item()


def test_tiny_tower_features_say_which_column_a_patch_is_in(tiny_checkpoint):
    # a lesion's side can only be learned if the features tell left from right; CLIP's random position
    # embeddings do not (a pretrained CLIP's do, which the tiny tower's codes stand in for)
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlavaForConditionalGeneration

    directory, _, _ = tiny_checkpoint
    saved = LlavaForConditionalGeneration.from_pretrained(directory)
    assert _column_accuracy(saved.model.vision_tower) == 1.0
    torch.manual_seed(0)
    assert _column_accuracy(CLIPVisionModel(CLIPVisionConfig(**TINY_VISION)).eval()) <= 0.5
