"""CLI registration for `qilin convert`: placeholder until checkpoint conversion lands."""

from qilin_med_vl.pending import register_pending


def register(parser):
    register_pending(parser, "qilin convert")
