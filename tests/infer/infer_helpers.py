"""Helpers shared by the inference tests (pictures, messages, ports, vision-call counting)."""

from __future__ import annotations

import socket

from PIL import Image, ImageDraw


def draw_picture(index: int, size=(96, 80)) -> Image.Image:
    """A small synthetic scan: dark background, a bright blob whose place depends on `index`."""
    image = Image.new("RGB", size, (12 * index % 255, 30, 60))
    ImageDraw.Draw(image).ellipse((6 + 7 * index, 10, 38 + 7 * index, 42), fill=(240, 240, 230))
    return image


def user_message(text: str, image: Image.Image | None = None) -> dict:
    content = [{"type": "image", "image": image}] if image is not None else []
    return {"role": "user", "content": [*content, {"type": "text", "text": text}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VisionCalls:
    """Counts forward calls of the model's vision tower (and the images they encoded)."""

    def __init__(self, model):
        self.calls = 0
        self.images = 0
        self._handle = model.model.vision_tower.register_forward_hook(self._count, with_kwargs=True)

    def _count(self, _module, args, kwargs, _output):
        pixels = kwargs.get("pixel_values", args[0] if args else None)
        self.calls += 1
        self.images += int(pixels.shape[0])

    def close(self):
        self._handle.remove()


# Distinctive identifying values written into test studies; none may ever appear in any output.
IDENTIFYING = {
    "PatientName": "Qilinserve^Wangxiaoming",
    "PatientID": "QSV-PID-31337",
    "InstitutionName": "Qilinserve People's Hospital",
    "ReferringPhysicianName": "Drserve^Chenjing",
}
NEEDLES = sorted({*IDENTIFYING.values(), "Wangxiaoming", "Qilinserve", "Chenjing", "31337"})


def named_study(name: str = "CT_small.dcm") -> bytes:
    """A pydicom test study re-labelled with the distinctive identifying values above, as bytes."""
    import io

    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is not installed; run `make install` (pydicom / pydicom-data)"
    dataset = pydicom.dcmread(path)
    for keyword, value in IDENTIFYING.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def leaked(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle.lower() in text.lower()]
