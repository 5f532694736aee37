"""CLI registration for `qilin data tm`: placeholder until the translation memory commands land."""

from qilin_med_vl.pending import register_pending


def register(parser):
    register_pending(parser, "qilin data tm (translation memory import/export)")
