"""Using a model: the Engine and its shells (terminal chat, OpenAI-compatible server, web page).

Public face: `Engine`, `GenerationRequest`, `SamplingSettings`.
"""

from qilin_med_vl.lazy import lazy_exports

_EXPORTS = {"Engine": "engine", "GenerationRequest": "engine", "SamplingSettings": "engine"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
