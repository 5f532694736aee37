"""Convert an original-LLaVA checkpoint (the format of the released Qilin-Med-VL and Qilin-Med-VL-Chat
weights) into an HF-native `LlavaForConditionalGeneration` directory.

The original format: `LlavaLlamaForCausalLM`, a config with `model_type: "llava"` holding flat LLaMA
fields plus `mm_*` fields, the LLaMA weights under `model.*` / `lm_head.*`, the projector under
`model.mm_projector.0/2.*` (mlp2x_gelu) or `model.mm_projector.*` (linear), optionally the CLIP tower
under `model.vision_tower.vision_tower.*`, in one or several `.bin` / `.safetensors` files (with an
index when sharded), and a LLaMA-2 SentencePiece tokenizer.

When the shards hold the vision tower, those weights are used and the vision source (`--vision-tower`,
else the config's `mm_vision_tower`) supplies only its config and image normalisation; otherwise the
weights come from the vision source too.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoTokenizer,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from qilin_med_vl.errors import CheckpointFormatError, ModelNotAvailableError
from qilin_med_vl.model.checkpoint import load_vision_encoder, save_checkpoint
from qilin_med_vl.model.compose import VisionEncoder, assemble
from qilin_med_vl.model.sources import load_or_explain

LM_PREFIXES = ("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head.")
VISION_PREFIX = "model.vision_tower.vision_tower."
PROJECTOR_PREFIX = "model.mm_projector."
# Old LLaMA checkpoints saved rotary caches; they are recomputed from the config.
RECOMPUTED_SUFFIXES = (".rotary_emb.inv_freq",)
# original mm_projector index -> transformers projector layer
MLP_LAYERS = {"0": "linear_1", "2": "linear_2"}
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def weight_files(src: Path) -> list[Path]:
    for index_name in WEIGHT_INDEXES:
        index = src / index_name
        if index.exists():
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [name for name in names if not (src / name).exists()]
            if missing:
                raise CheckpointFormatError(f"{index} names shards that are not in {src}: {missing}")
            return [src / name for name in names]
    for name in SINGLE_WEIGHTS:
        if (src / name).exists():
            return [src / name]
    raise CheckpointFormatError(
        f"{src} holds no weights: expected one of {', '.join(WEIGHT_INDEXES + SINGLE_WEIGHTS)}"
    )


def read_tensors(files: list[Path]) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as handle:
                tensors.update({key: handle.get_tensor(key) for key in handle.keys()})
        else:
            # mmap keeps a 13B checkpoint from being copied into memory twice.
            tensors.update(torch.load(file, map_location="cpu", weights_only=True, mmap=True))
    return tensors


def read_original_config(src: Path) -> dict:
    config_path = src / "config.json"
    if not config_path.exists():
        raise CheckpointFormatError(f"{src} has no config.json; is it a LLaVA checkpoint directory?")
    config = json.loads(config_path.read_text())
    expected = ("mm_hidden_size", "hidden_size", "num_hidden_layers", "vocab_size")
    missing = [key for key in expected if key not in config]
    if missing:
        raise CheckpointFormatError(
            f"{config_path} is not an original-LLaVA config: it lacks {missing} "
            f"(expected flat LLaMA fields plus mm_* fields; found keys {sorted(config)})"
        )
    if config.get("mm_use_im_start_end"):
        raise CheckpointFormatError(
            f"{config_path}: mm_use_im_start_end=true (image start/end tokens) has no transformers equivalent"
        )
    return config


def text_config_from(original: dict) -> LlamaConfig:
    known = set(LlamaConfig().to_dict())
    fields = {
        key: value
        for key, value in original.items()
        if key in known and key not in ("model_type", "architectures")
    }
    return LlamaConfig(**fields)


def split_tensors(tensors: dict[str, torch.Tensor], projector: str):
    """Partition original keys into (LLM state, vision state, projector state); unknown keys are an error."""
    lm, vision, projector_state, unknown = {}, {}, {}, []
    for key, tensor in tensors.items():
        if key.endswith(RECOMPUTED_SUFFIXES):
            continue
        if key.startswith(VISION_PREFIX):
            vision[key[len(VISION_PREFIX) :]] = tensor
        elif key.startswith(PROJECTOR_PREFIX):
            rest = key[len(PROJECTOR_PREFIX) :]
            if projector == "mlp2x_gelu" and rest.split(".")[0] in MLP_LAYERS:
                index, name = rest.split(".", 1)
                projector_state[f"{MLP_LAYERS[index]}.{name}"] = tensor
            elif projector == "linear" and rest in ("weight", "bias"):
                projector_state[f"linear_1.{rest}"] = tensor
            else:
                unknown.append(key)
        elif key.startswith(LM_PREFIXES):
            lm[key] = tensor
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointFormatError(
            f"unexpected weights {unknown[:10]}{' ...' if len(unknown) > 10 else ''}; expected only keys starting "
            f"with {', '.join(LM_PREFIXES + (VISION_PREFIX, PROJECTOR_PREFIX))}"
        )
    expected_projector = (
        {f"{layer}.{p}" for layer in MLP_LAYERS.values() for p in ("weight", "bias")}
        if projector == "mlp2x_gelu"
        else {"linear_1.weight", "linear_1.bias"}
    )
    if set(projector_state) != expected_projector:
        raise CheckpointFormatError(
            f"projector {projector}: expected weights {sorted(expected_projector)} (under {PROJECTOR_PREFIX}), "
            f"found {sorted(projector_state)}"
        )
    if projector == "linear":
        hidden = projector_state["linear_1.weight"].shape[0]
        dtype = projector_state["linear_1.weight"].dtype
        projector_state["linear_2.weight"] = torch.eye(hidden, dtype=dtype)
        projector_state["linear_2.bias"] = torch.zeros(hidden, dtype=dtype)
    return lm, vision, projector_state


def build_language_model(text_config: LlamaConfig, state: dict[str, torch.Tensor]) -> LlamaForCausalLM:
    # Meta construction + assign: the weights are adopted, never copied (a 13B model fits once).
    with torch.device("meta"):
        model = LlamaForCausalLM(text_config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        expected = sorted(model.state_dict())
        raise CheckpointFormatError(
            f"the LLaMA weights do not match the config: {error}\n"
            f"expected keys like {expected[:4]}; found keys like {sorted(state)[:4]}"
        ) from error
    return model


def vision_from_shards(vision_source: str, state: dict[str, torch.Tensor]) -> VisionEncoder:
    """The vision tower from weights found in the LLaVA shards; config and normalisation from the source."""
    config = load_or_explain("vision encoder config", vision_source, AutoConfig.from_pretrained)
    vision_config = getattr(config, "vision_config", config)
    image_processor = load_or_explain("image processor", vision_source, AutoImageProcessor.from_pretrained)
    with tempfile.TemporaryDirectory() as tmp:
        # from_pretrained understands every historical CLIP key layout; round-trip through it.
        vision_config.save_pretrained(tmp)
        save_file({key: tensor.contiguous() for key, tensor in state.items()}, f"{tmp}/model.safetensors")
        model, info = CLIPVisionModel.from_pretrained(
            tmp, dtype=next(iter(state.values())).dtype, output_loading_info=True
        )
    if info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]:
        # from_pretrained would quietly random-initialise what it cannot match.
        raise CheckpointFormatError(
            f"the vision tower weights under {VISION_PREFIX} do not fit the encoder config of {vision_source}: "
            f"missing {sorted(info['missing_keys'])[:5]}, unexpected {sorted(info['unexpected_keys'])[:5]}, "
            f"wrong shape {sorted(map(str, info['mismatched_keys']))[:5]}"
        )
    return VisionEncoder(
        model=model.eval(),
        image_mean=list(image_processor.image_mean),
        image_std=list(image_processor.image_std),
    )


def load_original_tokenizer(src: Path, text_config: LlamaConfig):
    """The LLaMA SentencePiece tokenizer, set to tokenize as LLaVA's `tokenizer_image_token` did.

    The text config is passed because AutoTokenizer would otherwise read `model_type: "llava"` from the
    original config.json and pick a generic tokenizer. LLaVA tokenized the text on each side of `<image>`
    separately, so every chunk got SentencePiece's leading "▁"; `legacy=True` (prepend "▁" after special
    tokens) reproduces that.
    """
    return load_or_explain(
        "tokenizer", src, lambda s: AutoTokenizer.from_pretrained(s, config=text_config, legacy=True)
    )


def convert_llava(src: str | Path, out: str | Path, vision_tower: str | None = None) -> Path:
    src = Path(src)
    if not src.is_dir():
        raise CheckpointFormatError(
            f"{src} is not a directory (expected an original-LLaVA checkpoint folder)"
        )
    original = read_original_config(src)
    projector = original.get("mm_projector_type", "linear")
    if projector not in ("mlp2x_gelu", "linear"):
        raise CheckpointFormatError(
            f"{src}: mm_projector_type {projector!r} is not supported (mlp2x_gelu, linear)"
        )
    if (
        original.get("mm_vision_select_layer", -2) != -2
        or original.get("mm_vision_select_feature", "patch") != "patch"
    ):
        raise CheckpointFormatError(
            f"{src}: only penultimate-layer patch features are supported "
            f"(mm_vision_select_layer=-2, mm_vision_select_feature=patch)"
        )
    vision_source = vision_tower or original.get("mm_vision_tower")
    if not vision_source:
        raise CheckpointFormatError(f"{src}: config has no mm_vision_tower; pass --vision-tower DIR")

    lm_state, vision_state, projector_state = split_tensors(read_tensors(weight_files(src)), projector)
    language_model = build_language_model(text_config_from(original), lm_state)
    try:
        if vision_state:
            encoder = vision_from_shards(vision_source, vision_state)
        else:
            encoder = load_vision_encoder(vision_source, dtype=next(iter(lm_state.values())).dtype)
    except ModelNotAvailableError as error:
        if vision_tower:
            raise
        raise ModelNotAvailableError(
            f"{error}\nThe checkpoint's config names mm_vision_tower={vision_source!r}; pass --vision-tower DIR "
            "with that encoder's files (the released Qilin-Med-VL used openai/clip-vit-large-patch14-336)."
        ) from error
    tokenizer = load_original_tokenizer(src, language_model.config)
    model, processor = assemble(
        encoder, language_model, tokenizer, projector, projector_state=projector_state
    )
    return save_checkpoint(model, processor, out)
