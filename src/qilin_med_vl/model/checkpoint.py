"""Create, save and load HF-native Qilin-Med-VL checkpoint directories.

A directory written here holds `config.json` (model_type `llava`), safetensors weights, the processor
(tokenizer, image processor, chat template) and a short README: it loads with
`LlavaForConditionalGeneration.from_pretrained` and `AutoProcessor.from_pretrained` and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoProcessor,
    AutoTokenizer,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from qilin_med_vl.model.compose import VisionEncoder, assemble
from qilin_med_vl.model.sources import load_or_explain
from qilin_med_vl.model.tiny import tiny_parts

DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

MODEL_CARD = """# {name}

A Qilin-Med-VL-style vision-language model (vision encoder → {projector} projector → LLM), written by
`qilin-med-vl`. It loads with plain transformers:

```python
from transformers import AutoProcessor, LlavaForConditionalGeneration
model = LlavaForConditionalGeneration.from_pretrained("{name}")
processor = AutoProcessor.from_pretrained("{name}")
```

Research use only; not for clinical decisions.
"""


def load_vision_encoder(source: str | Path, dtype="auto") -> VisionEncoder:
    """A CLIP/SigLIP vision tower from a full or vision-only checkpoint (directory or hub id)."""
    config = load_or_explain("vision encoder config", source, AutoConfig.from_pretrained)
    vision_config = getattr(config, "vision_config", config)  # a full CLIP/SigLIP config nests it
    model = load_or_explain(
        "vision encoder", source, lambda s: AutoModel.from_pretrained(s, config=vision_config, dtype=dtype)
    )
    processor = load_or_explain("image processor", source, AutoImageProcessor.from_pretrained)
    return VisionEncoder(
        model=model.eval(), image_mean=list(processor.image_mean), image_std=list(processor.image_std)
    )


def create_from_pretrained(
    vision: str | Path,
    llm: str | Path,
    projector: str,
    chat_template: str = "vicuna_v1",
    dtype="auto",
    seed: int = 0,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    encoder = load_vision_encoder(vision, dtype=dtype)
    language_model = load_or_explain(
        "language model", llm, lambda s: AutoModelForCausalLM.from_pretrained(s, dtype=dtype)
    )
    tokenizer = load_or_explain("tokenizer", llm, AutoTokenizer.from_pretrained)
    return assemble(encoder, language_model, tokenizer, projector, chat_template=chat_template, seed=seed)


def create_tiny(projector: str = "mlp2x_gelu", chat_template: str = "vicuna_v1", seed: int = 0):
    encoder, language_model, tokenizer = tiny_parts(seed)
    return assemble(encoder, language_model, tokenizer, projector, chat_template=chat_template, seed=seed)


def save_checkpoint(model: LlavaForConditionalGeneration, processor: LlavaProcessor, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    from qilin_med_vl.model.projector import projector_type

    card = MODEL_CARD.format(name=out.name, projector=projector_type(model.config))
    (out / "README.md").write_text(card, encoding="utf-8")
    return out


def load_checkpoint(path: str | Path, dtype="auto", device: str | None = None):
    """(model, processor) from an HF-native directory or hub id; clear error when unavailable."""
    model = load_or_explain(
        "model",
        path,
        lambda s: LlavaForConditionalGeneration.from_pretrained(s, dtype=dtype, device_map=device),
    )
    processor = load_or_explain("processor", path, AutoProcessor.from_pretrained)
    return model.eval(), processor
