"""Composing a model from pretrained parts on disk (CLIP or SigLIP + a causal LM), and clear errors."""

import pytest
import torch
from PIL import Image
from transformers import (
    AutoProcessor,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from qilin_med_vl.cli import main
from qilin_med_vl.model.tiny_tokenizer import build_tiny_tokenizer

SMALL_VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=32,
    patch_size=8,
)
OWN_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("llm")
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = OWN_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=len(tokenizer),
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A full CLIP checkpoint (text + vision), as openai/clip-vit-large-patch14-336 is published."""
    directory = tmp_path_factory.mktemp("clip")
    text = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=99
    )
    torch.manual_seed(1)
    CLIPModel(CLIPConfig(text_config=text, vision_config=SMALL_VISION, projection_dim=16)).save_pretrained(
        directory
    )
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32, image_mean=[0.1, 0.2, 0.3]).save_pretrained(
        directory
    )
    return directory


def test_compose_clip_and_llm_from_directories(tmp_path, clip_dir, llm_dir):
    out = tmp_path / "composed"
    assert main(["model", "create", "--vision", str(clip_dir), "--llm", str(llm_dir), "--out", str(out)]) == 0
    model = LlavaForConditionalGeneration.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)

    clip = CLIPModel.from_pretrained(clip_dir)
    torch.testing.assert_close(
        model.model.vision_tower.embeddings.patch_embedding.weight,
        clip.vision_model.embeddings.patch_embedding.weight,
    )
    llm = LlamaForCausalLM.from_pretrained(llm_dir)
    torch.testing.assert_close(
        model.model.language_model.layers[1].mlp.up_proj.weight, llm.model.layers[1].mlp.up_proj.weight
    )
    old_vocab = llm.config.vocab_size
    assert model.config.text_config.vocab_size == old_vocab + 1  # the <image> row
    torch.testing.assert_close(model.lm_head.weight[:old_vocab], llm.lm_head.weight)
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_index == old_vocab
    assert list(processor.image_processor.image_mean) == [0.1, 0.2, 0.3]  # the encoder's own normalisation
    assert (model.config.vision_feature_layer, model.config.vision_feature_select_strategy) == (-2, "default")

    inputs = processor(images=Image.new("RGB", (40, 20)), text="<image>\n看图", return_tensors="pt")
    assert (inputs["input_ids"] == model.config.image_token_index).sum() == 16  # (32/8)^2, CLS dropped
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()


def test_compose_siglip_keeps_every_patch(tmp_path, llm_dir):
    siglip = tmp_path / "siglip"
    SiglipVisionModel(SiglipVisionConfig(**SMALL_VISION)).save_pretrained(siglip)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(siglip)
    out = tmp_path / "composed"
    assert (
        main(
            [
                "model",
                "create",
                "--vision",
                str(siglip),
                "--llm",
                str(llm_dir),
                "--projector",
                "linear",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    model = LlavaForConditionalGeneration.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    assert model.config.vision_feature_select_strategy == "full"  # no CLS token to drop
    inputs = processor(images=Image.new("RGB", (32, 32)), text="<image>\n看图", return_tensors="pt")
    assert (inputs["input_ids"] == model.config.image_token_index).sum() == 16
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()


def test_llm_own_chat_template_option(tmp_path, clip_dir, llm_dir):
    out = tmp_path / "composed"
    args = [
        "model",
        "create",
        "--vision",
        str(clip_dir),
        "--llm",
        str(llm_dir),
        "--chat-template",
        "llm",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert AutoProcessor.from_pretrained(out).chat_template == OWN_TEMPLATE


def test_unavailable_hub_id_gives_one_clear_message(tmp_path, capsys, llm_dir):
    args = [
        "model",
        "create",
        "--vision",
        "openai/clip-vit-large-patch14-336",
        "--llm",
        str(llm_dir),
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 1
    error = capsys.readouterr().err
    assert "openai/clip-vit-large-patch14-336" in error
    assert "hf download" in error and "--local-dir" in error
    assert "Traceback" not in error


def test_missing_model_directory_is_named(capsys, tmp_path):
    missing = tmp_path / "no-such-model"
    assert main(["model", "info", str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err
