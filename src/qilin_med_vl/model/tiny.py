"""The `tiny` preset: a random-initialised CLIP-style vision tower and LLaMA-style LM, fully offline.

Sizes are what was measured to learn a synthetic task on 2 CPU cores: 64×64
images in 8-pixel patches → 64 image tokens, a 2-layer 64-dim ViT, a 2-layer 128-dim LLaMA, and the
tokenizer trained on shipped text. The same seed always gives the same weights.
"""

from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM
from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from qilin_med_vl.model.compose import VisionEncoder
from qilin_med_vl.model.tiny_tokenizer import build_tiny_tokenizer

TINY_VISION = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=64,
    patch_size=8,
    projection_dim=64,
)
TINY_LLM = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=2048,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)


def tiny_parts(seed: int = 0):
    """(vision encoder, language model, tokenizer) of the tiny preset, deterministic in `seed`."""
    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vision = CLIPVisionModel(CLIPVisionConfig(**TINY_VISION))
        llm = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tokenizer),
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **TINY_LLM,
            )
        )
    encoder = VisionEncoder(
        model=vision.eval(), image_mean=list(OPENAI_CLIP_MEAN), image_std=list(OPENAI_CLIP_STD)
    )
    return encoder, llm.eval(), tokenizer
