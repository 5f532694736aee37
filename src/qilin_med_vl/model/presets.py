"""Named model recipes for `qilin model create --preset`: the paper's parts, and the offline tiny model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelPreset:
    vision: str | None  # directory or hub id; None = built offline (tiny)
    llm: str | None
    projector: str
    chat_template: str = "vicuna_v1"


PRESETS: dict[str, ModelPreset] = {
    # the parts named by the released training scripts; the projector of the released checkpoint
    "paper": ModelPreset(
        vision="openai/clip-vit-large-patch14-336",
        llm="FlagAlpha/Llama2-Chinese-13b-Chat",
        projector="mlp2x_gelu",
    ),
    "tiny": ModelPreset(vision=None, llm=None, projector="mlp2x_gelu"),
}
