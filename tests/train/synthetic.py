"""A small synthetic ChiMed-VL-style dataset for training tests: rendered images, Chinese captions and QA.

Images are 64x64 PNGs: one of five modalities (a background shape and tone) with a bright lesion on the
left, the right or nowhere. Records follow the LLaVA conversation format the dataset builder writes,
with an images/ folder beside the JSONL file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

MODALITIES = {
    "X光": ((40, 40, 40), "ellipse"),
    "CT": ((70, 70, 90), "rectangle"),
    "磁共振": ((30, 60, 30), "ellipse"),
    "超声": ((90, 60, 30), "pieslice"),
    "病理切片": ((120, 60, 120), "rectangle"),
}
SIDES = {"左侧": 16, "右侧": 48, None: None}
ALIGN_PROMPTS = [
    "请基于图中的信息，撰写一段相关的描述。\n<image>",
    "<image>\n根据图中可见，提供一段相关的叙述。",
]


def render(modality: str, side: str | None, size: int = 64) -> Image.Image:
    tone, shape = MODALITIES[modality]
    image = Image.new("RGB", (size, size), tone)
    draw = ImageDraw.Draw(image)
    box = (6, 6, size - 6, size - 6)
    if shape == "pieslice":
        draw.pieslice(box, 200, 340, fill=(150, 150, 150))
    else:
        getattr(draw, shape)(box, outline=(160, 160, 160), width=3)
    if side is not None:
        x = SIDES[side]
        draw.ellipse((x - 6, 26, x + 6, 38), fill=(250, 250, 250))
    return image


def caption(modality: str, side: str | None) -> str:
    where = f"{side}可见一处高亮病灶" if side else "未见明显病灶"
    return f"这是一张{modality}图像，{where}。"


def write_dataset(folder: Path, stage: str, count: int, seed: int = 0, text_only: int = 0) -> Path:
    """Write `count` records (+ `text_only` records without an image) to folder/<stage>.jsonl."""
    rng = random.Random(seed)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(count):
        modality = rng.choice(list(MODALITIES))
        side = rng.choice(list(SIDES))
        name = f"images/{stage}_{index:04d}.png"
        render(modality, side).save(folder / name)
        if stage == "align":
            turns = [("human", rng.choice(ALIGN_PROMPTS)), ("gpt", caption(modality, side))]
        else:
            turns = [("human", "<image>\n这是什么检查？"), ("gpt", f"这是{modality}检查。")]
            if rng.random() < 0.5:
                answer = f"病灶位于{side}。" if side else "没有病灶。"
                turns += [("human", "病灶在哪一侧？"), ("gpt", answer)]
        conversations = [{"from": who, "value": text} for who, text in turns]
        records.append({"id": f"{stage}-{index}", "image": name, "conversations": conversations})
    for index in range(text_only):
        conversations = [
            {"from": "human", "value": "什么是CT？"},
            {"from": "gpt", "value": "CT是计算机断层扫描。"},
        ]
        records.append({"id": f"{stage}-text-{index}", "conversations": conversations})
    path = folder / f"{stage}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path
