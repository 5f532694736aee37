"""CLI registration for `qilin eval`: placeholder until that command is implemented."""

from qilin_med_vl.pending import register_pending


def register(parser):
    register_pending(parser, "qilin eval (benchmarks)")
