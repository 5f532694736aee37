"""The `tiny` preset: a random-initialised CLIP-style vision tower and LLaMA-style LM, fully offline.

Sizes are what was measured to learn a synthetic task on 2 CPU cores: 64×64
images in 8-pixel patches → 64 image tokens, a 2-layer 64-dim ViT, a 2-layer 128-dim LLaMA with 8
heads, and the tokenizer trained on shipped text. The same seed always gives the same weights.

The tower's position embeddings start as fixed 2-D sine-cosine codes of the patch grid instead of
CLIP's random init. A pretrained CLIP's learned position embeddings carry where each patch is;
random ones (std 0.02, next to patch features about ten times larger) barely do, and the LLM cannot
recover a patch's column from token order, because the image's place in the prompt varies with the
question. Without the codes side (left or right) was the demo's weak question type, held-out 0.64
and 0.73 against chance 0.56 and 0.58 on seeds 0 and 1; with them, 0.75 to 0.99 on seeds 0 to 4. The
LLM's 8 heads of 16 dims (not 4 of 32, at about the same cost) were measured with the codes, not apart.
"""

from __future__ import annotations

import math

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
    num_attention_heads=8,
    num_key_value_heads=8,
    max_position_embeddings=2048,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)


# Codes of this amplitude have a norm of 1.4 (4 x amplitude), about what a patch's features differ from
# its picture's mean (1.5 on the synthetic world); at 1.0 they drowned out the picture's content, and
# the lesion questions stayed near chance for far longer.
POSITION_CODE_AMPLITUDE = 0.35
POSITION_CODE_FREQUENCY_SPAN = 100.0  # the fastest code turns this many times faster than the slowest


def grid_position_codes(grid: int, width: int) -> torch.Tensor:
    """(grid * grid, width) codes of a patch grid in row-major order: for the row, then the column,
    sines and cosines at width / 8 frequencies from a quarter turn per patch down to
    1 / POSITION_CODE_FREQUENCY_SPAN of that; the last half of the width is left zero."""
    count = width // 8
    frequencies = torch.exp(-math.log(POSITION_CODE_FREQUENCY_SPAN) * torch.arange(count) / count)  # (count,)
    rows, columns = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")  # (grid, grid)

    def codes(coordinate: torch.Tensor) -> torch.Tensor:
        angles = coordinate.flatten()[:, None].float() * frequencies[None] * math.pi / 2  # (grid², count)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (grid², 2 count)

    table = torch.zeros(grid * grid, width)
    table[:, : 4 * count] = torch.cat([codes(rows), codes(columns)], dim=1)
    return table


def tiny_parts(seed: int = 0):
    """(vision encoder, language model, tokenizer) of the tiny preset, deterministic in `seed`."""
    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vision = CLIPVisionModel(CLIPVisionConfig(**TINY_VISION))
        grid = TINY_VISION["image_size"] // TINY_VISION["patch_size"]
        with torch.no_grad():  # row 0 is the class token's, which the projector never sees
            positions = vision.embeddings.position_embedding.weight  # (1 + grid², hidden)
            positions.zero_()
            positions[1:] = POSITION_CODE_AMPLITUDE * grid_position_codes(grid, TINY_VISION["hidden_size"])
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
