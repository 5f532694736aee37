"""Writes tiny checkpoints in the original (2023) LLaVA format, as released for Qilin-Med-VL, for tests.

Layout: config.json with `model_type: "llava"`, flat LLaMA fields and mm_* fields; LLaMA weights under
`model.*`/`lm_head.*`; projector under `model.mm_projector.*`; optionally the CLIP tower (2023 key
names, `vision_model.*`) under `model.vision_tower.vision_tower.*`; sharded .bin or safetensors with an
index; a SentencePiece `tokenizer.model` (LLaMA ids: unk 0, bos 1, eos 2).
"""

from __future__ import annotations

import io
import json
from importlib import resources
from pathlib import Path

import sentencepiece as spm
import torch
from safetensors.torch import save_file
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=2,
    image_size=32,
    patch_size=8,
)
TEXT = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4
)
ORIGINAL_VOCAB = 1000


def train_sentencepiece() -> bytes:
    text = resources.files("qilin_med_vl.resources").joinpath("tiny_tokenizer_corpus.txt").read_text("utf-8")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text.splitlines() * 4),
        model_writer=model,
        vocab_size=ORIGINAL_VOCAB,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,  # as LLaMA's tokenizer.model
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def write_vision_source(directory: Path, vision: CLIPVisionModel, with_weights: bool) -> Path:
    """A CLIP vision directory as on the hub: config + image processor (+ weights)."""
    directory.mkdir(parents=True, exist_ok=True)
    if with_weights:
        vision.save_pretrained(directory)
    else:
        vision.config.save_pretrained(directory)
    CLIPImageProcessor(
        size={"shortest_edge": VISION["image_size"]}, crop_size=VISION["image_size"]
    ).save_pretrained(directory)
    return directory


def original_state(llm: LlamaForCausalLM, vision: CLIPVisionModel | None, projector: dict) -> dict:
    state = {key: tensor.clone() for key, tensor in llm.state_dict().items()}
    if vision is not None:
        # The 2023 CLIPVisionModel nested everything under `vision_model.`.
        state.update(
            {
                f"model.vision_tower.vision_tower.vision_model.{k}": v.clone()
                for k, v in vision.state_dict().items()
            }
        )
    state.update({f"model.mm_projector.{k}": v for k, v in projector.items()})
    return state


def write_original_checkpoint(
    directory: Path,
    *,
    projector_type: str,
    vision_in_shards: bool,
    file_format: str,
    seed: int = 0,
    legacy=False,
):
    """Write the checkpoint; returns (llm, vision, projector weights) for reference computations."""
    torch.manual_seed(seed)
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=ORIGINAL_VOCAB, **TEXT)).eval()
    vision = CLIPVisionModel(CLIPVisionConfig(**VISION)).eval()
    hidden, vision_hidden = TEXT["hidden_size"], VISION["hidden_size"]
    if projector_type == "mlp2x_gelu":
        projector = {
            "0.weight": torch.randn(hidden, vision_hidden) * 0.1,
            "0.bias": torch.randn(hidden) * 0.1,
            "2.weight": torch.randn(hidden, hidden) * 0.1,
            "2.bias": torch.randn(hidden) * 0.1,
        }
    else:
        projector = {"weight": torch.randn(hidden, vision_hidden) * 0.1, "bias": torch.randn(hidden) * 0.1}
    directory.mkdir(parents=True, exist_ok=True)
    state = original_state(llm, vision if vision_in_shards else None, projector)
    keys = sorted(state)
    shards = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    weight_map = {}
    for number, shard_keys in enumerate(shards, start=1):
        if file_format == "safetensors":
            name = f"model-{number:05d}-of-00002.safetensors"
            save_file(
                {k: state[k].contiguous() for k in shard_keys}, directory / name, metadata={"format": "pt"}
            )
        else:
            name = f"pytorch_model-{number:05d}-of-00002.bin"
            torch.save({k: state[k] for k in shard_keys}, directory / name)
        weight_map.update(dict.fromkeys(shard_keys, name))
    index_name = (
        "model.safetensors.index.json" if file_format == "safetensors" else "pytorch_model.bin.index.json"
    )
    (directory / index_name).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))

    config = llm.config.to_dict()
    config.update(
        architectures=["LlavaLlamaForCausalLM"],
        model_type="llava",
        mm_vision_tower="/private/cluster/path/clip-vit-large-patch14-336",
        mm_hidden_size=vision_hidden,
        mm_projector_type=projector_type,
        mm_vision_select_layer=-2,
        mm_vision_select_feature="patch",
        mm_use_im_start_end=False,
        mm_use_im_patch_token=False,
        image_aspect_ratio="pad",
        tune_mm_mlp_adapter=False,
        use_mm_proj=True,
    )
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "tokenizer.model").write_bytes(train_sentencepiece())
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "pad_token": None,
                "add_bos_token": True,
                "add_eos_token": False,
                "legacy": legacy,
                "model_max_length": 2048,
                "padding_side": "right",
            }
        )
    )
    return llm, vision, projector
