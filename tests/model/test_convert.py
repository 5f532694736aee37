"""`qilin convert llava`: original-LLaVA checkpoints become HF-native ones that compute the same thing."""

import json

import numpy as np
import pytest
import sentencepiece as spm
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

from qilin_med_vl.cli import main
from qilin_med_vl.errors import CheckpointFormatError
from qilin_med_vl.model.convert import convert_llava

from .original_llava import VISION, write_original_checkpoint, write_vision_source

PROMPT = "USER: <image>\n这张胸部X线片显示了什么？ ASSISTANT:"


def original_input_ids(tokenizer_model: bytes, prompt: str, image_marker: int) -> list[int]:
    """LLaVA's tokenizer_image_token: each chunk tokenized alone (BOS only on the first), marker between."""
    sp = spm.SentencePieceProcessor(model_proto=tokenizer_model)
    chunks = [sp.encode(chunk) for chunk in prompt.split("<image>")]
    ids = [sp.bos_id()] + chunks[0]
    for chunk in chunks[1:]:
        ids += [image_marker] + chunk
    return ids


def reference_logits(llm, vision, projector, projector_type, ids, marker, pixel_values):
    """Independent computation: CLIP penultimate patch features → projector → LLaMA over the spliced sequence."""
    with torch.no_grad():
        patches = vision(pixel_values=pixel_values, output_hidden_states=True).hidden_states[-2][:, 1:]
        if projector_type == "mlp2x_gelu":
            hidden = F.gelu(F.linear(patches, projector["0.weight"], projector["0.bias"]))
            features = F.linear(hidden, projector["2.weight"], projector["2.bias"])
        else:
            features = F.linear(patches, projector["weight"], projector["bias"])
        at = ids.index(marker)
        embed = llm.get_input_embeddings()
        before = embed(torch.tensor([ids[:at]]))
        after = embed(torch.tensor([ids[at + 1 :]]))
        return llm(inputs_embeds=torch.cat([before, features, after], dim=1)).logits


CASES = [
    pytest.param("mlp2x_gelu", True, "safetensors", False, id="mlp-vision-in-shards-safetensors"),
    pytest.param("linear", False, "bin", True, id="linear-vision-from-dir-bin"),
]


@pytest.mark.parametrize("projector_type,vision_in_shards,file_format,legacy", CASES)
def test_converted_model_matches_reference(tmp_path, projector_type, vision_in_shards, file_format, legacy):
    src = tmp_path / "original"
    llm, vision, projector = write_original_checkpoint(
        src,
        projector_type=projector_type,
        vision_in_shards=vision_in_shards,
        file_format=file_format,
        legacy=legacy,
    )
    # With weights in the shards the directory holds only config + preprocessing; otherwise weights too.
    vision_dir = write_vision_source(tmp_path / "clip", vision, with_weights=not vision_in_shards)
    out = tmp_path / "converted"
    assert main(["convert", "llava", str(src), "--out", str(out), "--vision-tower", str(vision_dir)]) == 0

    model = LlavaForConditionalGeneration.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 48, 3), dtype=np.uint8))
    inputs = processor(images=image, text=PROMPT, return_tensors="pt")

    image_token = model.config.image_token_index
    patches = (VISION["image_size"] // VISION["patch_size"]) ** 2
    expected = original_input_ids((src / "tokenizer.model").read_bytes(), PROMPT, image_token)
    at = expected.index(image_token)
    expanded = expected[:at] + [image_token] * patches + expected[at + 1 :]
    assert inputs["input_ids"][0].tolist() == expanded  # tokenizes as the original did

    with torch.no_grad():
        converted = model(**inputs).logits[..., : llm.config.vocab_size]
    reference = reference_logits(
        llm, vision, projector, projector_type, expected, image_token, inputs["pixel_values"]
    )
    assert reference.shape == converted.shape  # the marker became `patches` feature positions in both
    torch.testing.assert_close(converted, reference, atol=1e-5, rtol=0)


def test_unknown_weights_are_named(tmp_path):
    src = tmp_path / "original"
    write_original_checkpoint(src, projector_type="linear", vision_in_shards=True, file_format="safetensors")
    config = json.loads((src / "config.json").read_text())
    config["mm_projector_type"] = "mlp2x_gelu"  # the shards hold a single linear layer
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointFormatError, match=r"unexpected weights \['model\.mm_projector\.bias'"):
        convert_llava(src, tmp_path / "out", vision_tower=str(tmp_path))


def test_vision_weights_that_do_not_fit_the_encoder_config_are_refused(tmp_path):
    src = tmp_path / "original"
    _, vision, _ = write_original_checkpoint(
        src, projector_type="linear", vision_in_shards=True, file_format="bin"
    )
    vision.config.num_hidden_layers = 2  # the shards hold 3 layers
    vision_dir = write_vision_source(tmp_path / "clip", vision, with_weights=False)
    with pytest.raises(CheckpointFormatError, match="do not fit the encoder config.*unexpected.*layers.2"):
        convert_llava(src, tmp_path / "out", vision_tower=str(vision_dir))


def test_not_a_llava_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(CheckpointFormatError, match="lacks.*mm_hidden_size.*found keys"):
        convert_llava(tmp_path, tmp_path / "out")


def test_private_vision_tower_path_explains_the_fix(tmp_path, capsys):
    src = tmp_path / "original"
    write_original_checkpoint(src, projector_type="linear", vision_in_shards=True, file_format="safetensors")
    assert main(["convert", "llava", str(src), "--out", str(tmp_path / "out")]) == 1
    message = capsys.readouterr().err
    assert "/private/cluster/path/clip-vit-large-patch14-336" in message
    assert "--vision-tower" in message
    assert "Traceback" not in message
