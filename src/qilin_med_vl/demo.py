"""`qilin demo`: the end-to-end demonstration on the bundled default (placeholder until it is built)."""

from qilin_med_vl.pending import register_pending


def register(parser):
    # Exit 0: `make demo` is a documented set-up command and must succeed while the demo is pending.
    register_pending(parser, "qilin demo (end-to-end demo)", exit_code=0)
