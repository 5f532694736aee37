"""Draw benchmarks/results.png from benchmarks/results.json: each measured ratio beside its target.

    .venv/bin/python benchmarks/chart.py

results.json holds what RESULTS.md reports: a list of {"label", "ratio", "target"}; a ratio of the
baseline itself would be 1, so the chart draws that line too.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    rows = json.loads((HERE / "results.json").read_text(encoding="utf-8"))
    labels = [row["label"] for row in rows]
    figure, axis = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.4))
    positions = range(len(rows))
    colours = ["tab:green" if row["ratio"] >= row["target"] else "tab:orange" for row in rows]
    axis.barh(positions, [row["ratio"] for row in rows], color=colours)
    axis.scatter([row["target"] for row in rows], positions, marker="|", s=400, color="black", label="target")
    for position, row in zip(positions, rows, strict=True):
        axis.text(row["ratio"] + 0.05, position, f"{row['ratio']:.2f}", va="center")
    axis.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    axis.set_yticks(list(positions), labels)
    axis.invert_yaxis()
    axis.set_xlabel("ratio to the baseline (or fraction of the ideal), measured in one run; 2 CPU cores")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(HERE / "results.png", dpi=110)
    print(HERE / "results.png")


if __name__ == "__main__":
    main()
