"""English→Chinese translation of dataset texts, for the builder: settings, backends, memory, checks.

The builder calls `make_translator(config).translate_batch(texts)`; `qilin data tm` moves pairs in and
out of the translation memory.
"""

from qilin_med_vl.data.translation.config import Translation, Translator, TranslatorConfig
from qilin_med_vl.data.translation.factory import make_translator

__all__ = ["Translation", "Translator", "TranslatorConfig", "make_translator"]
