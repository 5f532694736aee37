"""Loading benchmark pickles without running code from them: only plain builtin containers may appear.

A pickle can name any importable callable; the restricted unpickler refuses every global except a
few builtin types, so a tampered file fails with DataError instead of executing anything.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from qilin_med_vl.errors import DataError

ALLOWED_BUILTINS = frozenset(
    {"list", "dict", "tuple", "set", "frozenset", "str", "bytes", "int", "float", "bool"}
)


class _BuiltinsOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "builtins" and name in ALLOWED_BUILTINS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_pickle(path: Path) -> object:
    try:
        with open(path, "rb") as handle:
            return _BuiltinsOnlyUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataError(
            f"{path}: not a pickle of plain lists and dicts ({error}); use the published file or its parquet copy"
        ) from error
