"""Expert review of a build's machine translations: a stratified sample out, verdicts and corrections in.

`qilin data review export` (items.py, sample.py, sheets.py) and `qilin data review import` (apply.py,
agreement.py). Guide: docs/conversations_and_review.md.
"""
