"""Test-wide settings: nothing may reach a model hub, and tiny checkpoints are built once per session."""

import os

# Set before transformers/huggingface_hub are imported by any test: hub ids must fail fast offline.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
