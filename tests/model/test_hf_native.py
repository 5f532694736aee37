"""Checkpoints we write load and run in plain transformers, in a process that never imports our package."""

import json
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

PLAIN_TRANSFORMERS_SCRIPT = r"""
import json, sys
import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

directory, image_path, out_path = sys.argv[1:4]
model = LlavaForConditionalGeneration.from_pretrained(directory).eval()
processor = AutoProcessor.from_pretrained(directory)
messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "这张图像显示了什么？"}]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(images=Image.open(image_path), text=prompt, return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits
generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
np.save(out_path, logits.numpy())
print(json.dumps({
    "prompt": prompt,
    "input_ids": inputs["input_ids"][0].tolist(),
    "generated": generated[0, inputs["input_ids"].shape[1]:].tolist(),
    "imported_qilin": any(name.startswith("qilin_med_vl") for name in sys.modules),
}))
"""


def test_checkpoint_runs_in_plain_transformers(tiny_checkpoint, tmp_path):
    directory, model, processor = tiny_checkpoint
    image_path = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 90, 3), dtype=np.uint8)).save(image_path)
    logits_path = tmp_path / "logits.npy"
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_TRANSFORMERS_SCRIPT, str(directory), str(image_path), str(logits_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["imported_qilin"] is False
    assert len(report["generated"]) > 0

    # Same prompt, same image through our in-memory model: identical token ids and logits.
    inputs = processor(images=Image.open(image_path), text=report["prompt"], return_tensors="pt")
    assert inputs["input_ids"][0].tolist() == report["input_ids"]
    image_tokens = report["input_ids"].count(model.config.image_token_index)
    assert image_tokens == model.config.image_seq_length == 64
    with torch.no_grad():
        ours = model(**inputs).logits.numpy()
    np.testing.assert_allclose(np.load(logits_path), ours, atol=1e-5, rtol=0)
