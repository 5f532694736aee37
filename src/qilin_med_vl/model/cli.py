"""CLI registration for `qilin model`: placeholder until model composition lands."""

from qilin_med_vl.pending import register_pending


def register(parser):
    register_pending(parser, "qilin model")
