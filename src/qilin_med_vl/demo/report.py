"""The demo's report: one self-contained HTML page (pictures embedded) a person wants to look at.

Sections: the verdict; held-out accuracy per question type next to chance and the blind model (bars);
the dataset's Table 1/2 statistics and what the builder kept and dropped; sample pictures with their
Chinese captions; the loss curves of the three runs; held-out answers with their pictures; the answer
about a real chest X-ray; every step with its command and time. Figures are read from what the
commands wrote (eval's predictions, stats.json, manifest.json, train_log.jsonl), never recomputed.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from qilin_med_vl.demo.verdict import PASS_MARGIN, is_correct, read_jsonl
from qilin_med_vl.llava_format import ALIGNMENT, built_files

REPORT_FILE = "report.html"
RUNS = (
    ("text", "text-only pre-training"),
    ("align", "stage 1: alignment"),
    ("instruct", "stage 2: instruction"),
)
SAMPLE_PICTURES = 10
HELD_OUT_SHOWN = 12
PAGE_STYLE = """
body { font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
.pass { color: #1a7f37; } .fail { color: #b42318; }
table { border-collapse: collapse; margin: .6em 0; } td, th { border: 1px solid #ddd; padding: 4px 8px; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
img { max-width: 100%; }
.card { width: 200px; font-size: 13px; } .card img { width: 200px; height: 200px; image-rendering: pixelated; }
.ok { color: #1a7f37; } .wrong { color: #b42318; } code { background: #f6f6f6; padding: 1px 4px; }
"""


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _picture(path: Path, side: int = 200) -> str:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _accuracy_chart(types: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [entry["question_type"] for entry in types]
    positions = range(len(names))
    figure, axis = plt.subplots(figsize=(7.5, 3.4))
    for offset, key, label, colour in (
        (-0.27, "accuracy", "with the picture", "#2f6fb0"),
        (0.0, "blind_accuracy", "blind (picture blanked)", "#9aa5b1"),
        (0.27, "chance", "chance (most common answer)", "#e0b34c"),
    ):
        axis.bar(
            [x + offset for x in positions], [entry[key] for entry in types], 0.26, label=label, color=colour
        )
    axis.set_xticks(list(positions), names)
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("held-out accuracy")
    axis.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    encoded = _png(figure)
    plt.close(figure)
    return f'<img alt="accuracy per question type" src="data:image/png;base64,{encoded}">'


def _loss_chart(out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(RUNS), figsize=(11, 3.0))
    for axis, (name, title) in zip(axes, RUNS, strict=True):
        log = out / name / "train_log.jsonl"
        entries = [entry for entry in read_jsonl(log) if "loss" in entry] if log.is_file() else []
        axis.plot([entry["step"] for entry in entries], [entry["loss"] for entry in entries], color="#2f6fb0")
        axis.set_title(title, fontsize="medium")
        axis.set_xlabel("step")
    axes[0].set_ylabel("training loss")
    figure.tight_layout()
    encoded = _png(figure)
    plt.close(figure)
    return f'<img alt="loss curves" src="data:image/png;base64,{encoded}">'


def _table(header: list[str], rows: list[list], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = ""
    for row in rows:
        cells = "".join(
            f'<td class="num">{html.escape(str(cell))}</td>'
            if index >= numeric_from
            else f"<td>{html.escape(str(cell))}</td>"
            for index, cell in enumerate(row)
        )
        body += f"<tr>{cells}</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _dataset_section(built: Path) -> str:
    stats = json.loads((built / "stats.json").read_text(encoding="utf-8"))
    manifest = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    parts = []
    for stage, table in stats["tables"].items():
        columns = list(table)
        fields = [name for name in next(iter(table.values())) if name != "pairs"]
        rows = [["pairs", *(f"{table[c]['pairs']:,}" for c in columns)]]
        for name in fields:
            cells = [table[c][name] for c in columns]
            rows.append([f"{name}: total {stats['unit']}", *(f"{cell['total']:,}" for cell in cells)])
            rows.append([f"{name}: max", *(f"{cell['max']:,}" for cell in cells)])
            rows.append([f"{name}: median (Q1, Q3)",
                         *(f"{cell['median']:g} ({cell['q1']:g}, {cell['q3']:g})" if cell["count"] else "-"
                           for cell in cells)])  # fmt: skip
        parts.append(
            f"<h3>ChiMed-VL {html.escape(stage)} (Table {1 if stage == ALIGNMENT else 2} style)</h3>"
        )
        parts.append(_table(["", *columns], rows))
    totals = manifest["totals"]
    rows = [[stage, entry["read"], entry["kept"] - entry["test"], entry["test"], sum(entry["dropped"].values())]
            for stage, entry in totals["stages"].items()]  # fmt: skip
    parts.append("<h3>What the builder kept</h3>")
    parts.append(_table(["stage", "read", "train", "held out (test)", "dropped"], rows))
    if totals["dropped"]:
        parts.append("<p>Dropped, by reason: " + ", ".join(
            f"<code>{html.escape(reason)}</code> {count}" for reason, count in totals["dropped"].items()) + "</p>")  # fmt: skip
    return "\n".join(parts)


def _samples_section(built: Path) -> str:
    files = built_files(built, ALIGNMENT)
    cards = []
    for path in files.files:
        for line in path.open(encoding="utf-8"):
            record = json.loads(line)
            if len(cards) >= SAMPLE_PICTURES:
                break
            caption = record["conversations"][1]["value"]
            cards.append(f'<div class="card">{_picture(files.image_root / record["image"])}'
                         f"<div>{html.escape(caption[:140])}</div></div>")  # fmt: skip
    return f'<div class="grid">{"".join(cards)}</div>'


def _held_out_section(out: Path) -> str:
    predictions = [
        entry
        for entry in read_jsonl(out / "eval" / "predictions.jsonl")
        if entry.get("answer_type") != "caption"
    ]
    cards = []
    for entry in predictions[:HELD_OUT_SHOWN]:
        picture = _picture(out / "built" / entry["image"]) if entry.get("image") else ""
        mark = '<span class="ok">✓</span>' if is_correct(entry) else '<span class="wrong">✗</span>'
        cards.append(
            f'<div class="card">{picture}<div>问：{html.escape(entry["question"][-60:])}</div>'
            f"<div>答：{html.escape(entry['prediction'])} {mark}</div>"
            f"<div>参考：{html.escape(entry['reference'])}</div></div>"
        )
    return f'<div class="grid">{"".join(cards)}</div>'


def _chat_section(chat: dict) -> str:
    from qilin_med_vl.imaging import load_study

    image = load_study(chat["image"]).image
    image.thumbnail((260, 260))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    picture = (
        f'<img alt="chest X-ray" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'
    )
    return (f"<p>{picture}</p><p>问：{html.escape(chat['question'])}<br>答：{html.escape(chat['answer'])}</p>"
            f"<p>The DICOM comes from <code>pydicom-data</code> (<code>{html.escape(Path(chat['image']).name)}</code>); "
            "the synthetic world holds it once, as a captioned figure of the stage-1 data, and asks no question "
            "about it: every question of stage 2 is about a drawn picture, so this shows how far the tiny model "
            "carries to a real one.</p>")  # fmt: skip


def write_report(out: Path, summary: dict) -> Path:
    """Write out/report.html from the demo's outputs and `summary` (demo_summary.json); returns its path."""
    types = summary["question_types"]
    verdict_class = "pass" if summary["passed"] else "fail"
    verdict = ("PASSED: on every question type the model beats chance and its blind self by at least "
               f"{PASS_MARGIN:.2f}" if summary["passed"] else "FAILED: not every question type beats both")  # fmt: skip
    if summary["quick"]:
        verdict_class, verdict = "fail", "QUICK RUN (smoke test): too few training steps to judge learning"
    type_rows = [[entry["question_type"], entry["items"], f"{entry['accuracy']:.2f}", f"{entry['blind_accuracy']:.2f}",
                  f"{entry['chance']:.2f}", "pass" if entry["passed"] else "FAIL"] for entry in types]  # fmt: skip
    step_rows = [[entry["step"], entry["command"], f"{entry['seconds']:.1f}"] for entry in summary["steps"]]
    total = sum(entry["seconds"] for entry in summary["steps"])
    body = f"""
<h1>Qilin-Med-VL demo</h1>
<p class="{verdict_class}"><b>{html.escape(verdict)}</b></p>
<p>Seed {summary["seed"]}; {total:.0f} s on this machine. A synthetic medical world (five rendered modalities, a
lesion that moves the pixels) was built into a ChiMed-VL-style Chinese dataset, a tiny LLaVA was trained on it in
the paper's two stages, and it was asked about pictures from articles held out of training.</p>
<h2>Does it look at the picture?</h2>
{_accuracy_chart(types) if types else ""}
{_table(["question type", "held-out items", "accuracy", "blind", "chance", "verdict"], type_rows)}
<p>Pass criterion: accuracy at least {PASS_MARGIN:.2f} above chance (always the most common answer) and above the
same model with every picture blanked, on at least 20 items per type: about two standard errors at these
sample sizes, so neither the questions alone nor the answer frequencies can pass it. Figures are
<code>qilin eval</code>'s per-item scores (eval/predictions.jsonl, eval_blind/predictions.jsonl).</p>
<h2>The dataset</h2>
{_dataset_section(out / "built")}
<h2>Sample pictures and their Chinese captions</h2>
{_samples_section(out / "built")}
<h2>Training</h2>
<p>The paper's LLM is pretrained; ours starts random, and alignment alone cannot teach a random LLM a language, so
the LLM first learns the training texts without pictures (text), then stage 1 trains the projector alone and
stage 2 the projector and the LLM, the vision tower frozen throughout.</p>
{_loss_chart(out)}
<h2>Held-out answers</h2>
{_held_out_section(out)}
<h2>A real chest X-ray</h2>
{_chat_section(summary["chat"])}
<h2>Every step</h2>
{_table(["step", "command", "seconds"], step_rows, numeric_from=2)}
<p>Try the model: <code>qilin serve --model {html.escape(str(out / "instruct"))}</code> (OpenAI-compatible API) or
<code>qilin web --model {html.escape(str(out / "instruct"))}</code> (web page).</p>
"""
    page = f'<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>Qilin-Med-VL demo</title><style>{PAGE_STYLE}</style></head><body>{body}</body></html>'
    path = out / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path
