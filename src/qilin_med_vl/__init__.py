"""Qilin-Med-VL: a Chinese medical vision-language model toolkit (data, model, training, inference)."""

__version__ = "0.1.0"
