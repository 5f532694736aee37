"""Composing, saving, loading and converting LlavaForConditionalGeneration checkpoints; presets; the tiny model.

Public face: `create_from_pretrained`, `create_tiny`, `save_checkpoint`, `load_checkpoint`, `convert_llava`.
"""

from qilin_med_vl.lazy import lazy_exports

_EXPORTS = {
    "create_from_pretrained": "checkpoint",
    "create_tiny": "checkpoint",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "convert_llava": "convert",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
