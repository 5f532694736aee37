"""Offline dataset building (imports no torch): sources, filters, composites, translation, templates, build.

Public face: `load_build_config` and `build` (one build, or one shard of it), `READERS` (the public
source formats), `link_released` (images for the released ChiMed-VL files), `compute_stats`.
"""

from qilin_med_vl.lazy import lazy_exports

_EXPORTS = {
    "load_build_config": "build_config",
    "build": "build",
    "READERS": "sources",
    "link_released": "link",
    "compute_stats": "stats",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
