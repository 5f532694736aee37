"""English→Chinese translation of dataset texts, for the builder: settings, backends, memory, checks.

The builder calls `make_translator(config).submit_batch(texts)`, a batch at a time, the next one sent before
the current one is read back; `qilin data tm` moves pairs in and
out of the translation memory.
"""

from qilin_med_vl.data.translation.config import Translation, Translator, TranslatorConfig
from qilin_med_vl.data.translation.factory import make_translator

__all__ = ["Translation", "Translator", "TranslatorConfig", "make_translator"]
