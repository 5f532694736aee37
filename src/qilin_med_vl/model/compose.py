"""Assemble transformers' `LlavaForConditionalGeneration` and `LlavaProcessor` from a vision encoder,
a causal LM and its tokenizer: the one place where the parts of a Qilin-Med-VL model are put together.

Choices fixed here (as the paper and the released model have them): the `<image>` token is added as a special token and the
embeddings grow with mean-initialised rows; image features come from the penultimate vision layer (-2)
with the CLS token dropped when the encoder has one; images are padded to a square with the encoder's
mean colour before resizing (LLaVA's `image_aspect_ratio=pad`); the chat template is Vicuna v1 unless
the LLM's own is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaImageProcessorPil,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from qilin_med_vl.errors import QilinError
from qilin_med_vl.llava_format import IMAGE_TOKEN
from qilin_med_vl.model.chat_template import CHAT_TEMPLATES
from qilin_med_vl.model.projector import PROJECTOR_ACTIVATIONS

VISION_FEATURE_LAYER = -2  # penultimate layer, as LLaVA and the paper (section 5.2)
BICUBIC = 3  # PIL.Image.Resampling.BICUBIC, CLIP's resampling
OWN_CHAT_TEMPLATE = "llm"  # keep the LLM tokenizer's own chat template


@dataclass
class VisionEncoder:
    """A loaded vision tower (e.g. CLIPVisionModel) with the normalisation it was trained with."""

    model: PreTrainedModel
    image_mean: list[float]
    image_std: list[float]


def extra_vision_tokens(vision: PreTrainedModel) -> int:
    """How many tokens the encoder emits beyond one per patch (1 for CLIP's CLS, 0 for SigLIP)."""
    config = vision.config
    parameter = next(vision.parameters())
    pixels = torch.zeros(1, config.num_channels, config.image_size, config.image_size, dtype=parameter.dtype)
    with torch.no_grad():
        hidden = vision(pixel_values=pixels.to(parameter.device)).last_hidden_state  # (1, tokens, hidden)
    return hidden.shape[1] - (config.image_size // config.patch_size) ** 2


def add_image_token(tokenizer: PreTrainedTokenizerBase) -> int:
    """Register `<image>` as a special token (idempotent) and give the tokenizer a pad token."""
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    if tokenizer.pad_token is None:
        # LLaVA pads LLaMA-2 with <unk>; fall back to EOS for vocabularies without one.
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


def build_processor(
    vision: VisionEncoder, tokenizer: PreTrainedTokenizerBase, chat_template: str
) -> LlavaProcessor:
    size = vision.model.config.image_size
    image_processor = LlavaImageProcessorPil(
        do_pad=True,
        do_resize=True,
        size={"shortest_edge": size},
        do_center_crop=True,
        crop_size={"height": size, "width": size},
        resample=BICUBIC,
        do_rescale=True,
        do_normalize=True,
        image_mean=list(vision.image_mean),
        image_std=list(vision.image_std),
        do_convert_rgb=True,
    )
    if chat_template == OWN_CHAT_TEMPLATE:
        if not tokenizer.chat_template:
            raise QilinError("--chat-template llm: the LLM's tokenizer has no chat template; use vicuna_v1")
        template = tokenizer.chat_template
    elif chat_template in CHAT_TEMPLATES:
        template = CHAT_TEMPLATES[chat_template]
    else:
        known = ", ".join([*CHAT_TEMPLATES, OWN_CHAT_TEMPLATE])
        raise QilinError(f"unknown chat template {chat_template!r}; choose one of: {known}")
    extra = extra_vision_tokens(vision.model)
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision.model.config.patch_size,
        vision_feature_select_strategy="default" if extra == 1 else "full",
        chat_template=template,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=extra,
    )


def assemble(
    vision: VisionEncoder,
    language_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    projector: str,
    chat_template: str = "vicuna_v1",
    projector_state: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Compose the full model. `projector_state` (keys `linear_1.*`, `linear_2.*`) reuses trained
    projector weights; without it the projector is freshly initialised from `seed`."""
    if projector not in PROJECTOR_ACTIVATIONS:
        raise QilinError(
            f"unknown projector {projector!r}; choose one of: {', '.join(PROJECTOR_ACTIVATIONS)}"
        )
    image_token_id = add_image_token(tokenizer)
    if language_model.get_input_embeddings().num_embeddings < len(tokenizer):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # mean resizing samples the new rows
            language_model.resize_token_embeddings(len(tokenizer), mean_resizing=True)

    extra = extra_vision_tokens(vision.model)
    if extra not in (0, 1):
        raise QilinError(
            f"vision encoder emits {extra} extra tokens; only CLS-or-nothing encoders are supported"
        )
    patches = (vision.model.config.image_size // vision.model.config.patch_size) ** 2
    text_config = language_model.config
    config = LlavaConfig(
        vision_config=vision.model.config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_index=image_token_id,
        image_seq_length=patches,
        projector_hidden_act=PROJECTOR_ACTIVATIONS[projector],
        multimodal_projector_bias=True,
        vision_feature_layer=VISION_FEATURE_LAYER,
        vision_feature_select_strategy="default" if extra == 1 else "full",
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )
    dtype = next(language_model.parameters()).dtype
    # Build the shell on the meta device: the real weights are the parts we already hold.
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower = vision.model
    model.model.language_model = language_model.get_decoder()
    model.lm_head = language_model.get_output_embeddings()
    model.model.multi_modal_projector.to_empty(device=next(language_model.parameters()).device)
    _init_projector(model.model.multi_modal_projector, projector, projector_state, seed)
    model.model.multi_modal_projector.to(dtype)
    if config.tie_word_embeddings:
        model.tie_weights()
    leftover = [name for name, tensor in model.state_dict().items() if tensor.is_meta]
    if leftover:
        raise QilinError(f"internal error: tensors left uninitialised while composing: {leftover[:5]}")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.eval()
    return model, build_processor(vision, tokenizer, chat_template)


def _init_projector(module, projector: str, state: dict[str, torch.Tensor] | None, seed: int) -> None:
    if state is not None:
        module.load_state_dict(state, strict=True)
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in (module.linear_1, module.linear_2):
            layer.reset_parameters()
    if projector == "linear":
        set_identity(module.linear_2)


def set_identity(layer: nn.Linear) -> None:
    """Make `layer` the identity map (square weight = I, bias = 0)."""
    if layer.in_features != layer.out_features:
        raise ValueError(f"identity needs a square layer, got {layer.in_features}->{layer.out_features}")
    with torch.no_grad():
        layer.weight.copy_(torch.eye(layer.in_features, dtype=layer.weight.dtype))
        if layer.bias is not None:
            layer.bias.zero_()
