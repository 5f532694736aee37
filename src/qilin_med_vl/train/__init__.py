"""Training one curriculum stage on transformers' Trainer: tokenization, batches, stages, the run.

Public face: `TrainConfig` and `load_config` (the YAML recipe), `run` (one stage, end to end).
"""

from qilin_med_vl.lazy import lazy_exports

_EXPORTS = {"TrainConfig": "config", "load_config": "config", "run": "run"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
