"""Observability of a run: every log line to `train_log.jsonl`, and PNG loss/lr curves redrawn at each log.

TensorBoard, W&B and the progress bar come from transformers (`report_to: [tensorboard]` or
`[wandb]` with the `wandb` extra installed, tqdm). Only the
main process writes. A resumed run first drops the log lines after its checkpoint's step, so the file
reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

LOG_FILE = "train_log.jsonl"
CURVES_FILE = "loss_curve.png"
CURVE_REFRESH_SECONDS = 30.0


def read_log(output_dir: str | Path) -> list[dict]:
    path = Path(output_dir) / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class JsonlLogCallback(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        path = Path(args.output_dir) / LOG_FILE
        kept = [entry for entry in read_log(args.output_dir) if entry.get("step", 0) <= state.global_step]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(entry) + "\n" for entry in kept), encoding="utf-8")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        entry = {"step": state.global_step, **logs}
        with open(Path(args.output_dir) / LOG_FILE, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(entry) + "\n")


def plot_curves(output_dir: str | Path) -> Path | None:
    """Training loss and learning rate against step, from train_log.jsonl, as a PNG."""
    entries = [entry for entry in read_log(output_dir) if "loss" in entry]
    if not entries:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    steps = [entry["step"] for entry in entries]
    evaluations = [entry for entry in read_log(output_dir) if "eval_loss" in entry]
    figure, (loss_axis, lr_axis) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    loss_axis.plot(steps, [entry["loss"] for entry in entries], marker=".", label="training")
    if evaluations:
        loss_axis.plot([e["step"] for e in evaluations], [e["eval_loss"] for e in evaluations], marker="o",
                       label="validation")  # fmt: skip
        loss_axis.legend()
    loss_axis.set_ylabel("loss")
    loss_axis.grid(alpha=0.3)
    lr_axis.plot(steps, [entry.get("learning_rate", float("nan")) for entry in entries], color="tab:orange")
    lr_axis.set_ylabel("learning rate")
    lr_axis.set_xlabel("step")
    lr_axis.grid(alpha=0.3)
    figure.suptitle(Path(output_dir).name)
    figure.tight_layout()
    path = Path(output_dir) / CURVES_FILE
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


class LossCurveCallback(TrainerCallback):
    """Redraws loss_curve.png at a log line (it runs after JsonlLogCallback, which it reads) once
    `min_interval` seconds have passed since the last drawing (drawing takes ~0.5 s), and at the end."""

    def __init__(self, min_interval: float = CURVE_REFRESH_SECONDS):
        self.min_interval = min_interval
        self._drawn_at: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        now = time.monotonic()
        if state.is_world_process_zero and (
            self._drawn_at is None or now - self._drawn_at >= self.min_interval
        ):
            plot_curves(args.output_dir)
            self._drawn_at = time.monotonic()

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            plot_curves(args.output_dir)
