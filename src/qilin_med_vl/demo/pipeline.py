"""The demo, top to bottom: every step is a `qilin` command, printed with its time, run in this process.

synth -> tm import -> build (translation memory only, a held-out test split) -> model create ->
stats -> text-only pre-training of the tiny LLM -> stage 1 -> stage 2 -> eval on the held-out split,
with and without the pictures -> chat about a real chest X-ray DICOM -> verdict and report.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from qilin_med_vl.demo.corpus import write_text_corpus
from qilin_med_vl.demo.recipes import write_build_recipe, write_recipe
from qilin_med_vl.demo.report import write_report
from qilin_med_vl.demo.verdict import judge
from qilin_med_vl.errors import QilinError

# the world: counts sized so that stage 2 sees each question type often within its steps
WORLD = {"captions": 600, "cases": 400, "vqa": 3000}
QUICK_WORLD = {"captions": 40, "cases": 30, "vqa": 160}
CHAT_QUESTION = "这张影像是什么检查？"
REAL_CHEST_XRAY = "RG1_UNCR.dcm"  # pydicom-data's computed radiography of a chest
SUMMARY_FILE = "demo_summary.json"


@dataclass
class Demo:
    out: Path
    seed: int = 0
    quick: bool = False
    timings: list[tuple[str, str, float]] = field(default_factory=list)  # (step, command, seconds)
    chat_answer: str = ""

    @property
    def paths(self) -> dict[str, Path]:
        names = ("synth", "built", "base", "text", "align", "instruct", "eval", "eval_blind", "corpus")
        return {name: self.out / name for name in names}

    def step(self, name: str, argv: list[str], capture: bool = False) -> str:
        """Run `qilin ARGV` as a user would, print it and its time; returns what it printed when `capture`."""
        from qilin_med_vl.cli import main

        command = "qilin " + shlex.join(argv)
        print(f"\n== [{len(self.timings) + 1}] {name}\n$ {command}", flush=True)
        started = time.monotonic()
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed) if capture else contextlib.nullcontext():
            code = main(argv)
        seconds = time.monotonic() - started
        if capture:
            sys.stdout.write(printed.getvalue())
        self.timings.append((name, command, seconds))
        print(f"   ({seconds:.1f} s)", flush=True)
        if code != 0:
            raise QilinError(f"demo step {name!r} failed (exit {code}): {command}")
        return printed.getvalue()

    def note(self, name: str, what: str, seconds: float) -> None:
        """A step that is a few lines of Python rather than a command."""
        self.timings.append((name, what, seconds))
        print(f"\n== [{len(self.timings)}] {name}\n   {what} ({seconds:.1f} s)", flush=True)

    def run(self) -> int:
        p = self.paths
        world = QUICK_WORLD if self.quick else WORLD
        progress = ["--no-progress"] if self.quick else []
        self.step("render a synthetic medical world", [
            "data", "synth", "--out", str(p["synth"]), "--seed", str(self.seed), "--overwrite", *progress,
            *(item for key, value in world.items() for item in (f"--{key}", str(value))),
        ])  # fmt: skip
        self.step("import its Chinese references into the build's translation memory", [
            "data", "tm", "import", str(p["synth"] / "translation_memory.jsonl"), "--out", str(p["built"]),
        ])  # fmt: skip
        build_recipe = write_build_recipe(p["synth"], self.out)
        self.step("build ChiMed-VL from it (translation memory only; a held-out test split)", [
            "data", "build", "--config", str(build_recipe), "--out", str(p["built"]),
            "--translator", "memory", f"seed={self.seed}", *progress,
        ])  # fmt: skip
        self.step("create the tiny model (random CLIP-style ViT + LLaMA, offline)", [
            "model", "create", "--preset", "tiny", "--out", str(p["base"]), "--seed", str(self.seed),
        ])  # fmt: skip
        self.step("the dataset's Table 1/2 statistics in the model's tokens", [
            "data", "stats", str(p["built"]), "--tokenizer", str(p["base"]),
        ])  # fmt: skip

        started = time.monotonic()
        corpus = p["corpus"] / "text.jsonl"
        count = write_text_corpus(p["built"], corpus)
        self.note("text-only records for the LLM (it starts random; the paper's starts pretrained)",
                  f"{count} records without pictures -> {corpus}", time.monotonic() - started)  # fmt: skip
        for name, model, data, why in (
            ("text", p["base"], corpus, "pre-train the tiny LLM on the training texts"),
            ("align", p["text"], p["built"], "stage 1, alignment: the projector learns (ViT and LLM frozen)"),
            ("instruct", p["align"], p["built"], "stage 2, instruction: projector + LLM learn (ViT frozen)"),
        ):
            recipe = write_recipe(name, self.out, model, data, self.seed, self.quick)
            self.step(why, ["train", "--config", str(recipe)])

        evaluate = ["eval", "--task", "chimed-vl", "--data", str(p["built"]), "--model", str(p["instruct"])]
        self.step("evaluate on the held-out articles", [*evaluate, "--out", str(p["eval"])])
        self.step("evaluate blind: the same questions, every picture blanked",
                  [*evaluate, "--blank-images", "--out", str(p["eval_blind"])])  # fmt: skip
        self.chat_answer = self.step("chat about a real chest X-ray (DICOM from pydicom-data)", [
            "chat", "--model", str(p["instruct"]), "--image", real_chest_xray(), "--max-new-tokens", "24",
            CHAT_QUESTION,
        ], capture=True).strip()  # fmt: skip
        return self.finish()

    def finish(self) -> int:
        p = self.paths
        results = judge(
            p["eval"] / "predictions.jsonl",
            p["eval_blind"] / "predictions.jsonl",
            p["synth"] / "ground_truth.jsonl",
        )
        passed = bool(results) and all(result.passed for result in results)
        summary = {
            "passed": passed,
            "seed": self.seed,
            "quick": self.quick,
            "question_types": [result.to_dict() for result in results],
            "chat": {"image": real_chest_xray(), "question": CHAT_QUESTION, "answer": self.chat_answer},
            "steps": [
                {"step": name, "command": command, "seconds": round(seconds, 2)}
                for name, command, seconds in self.timings
            ],  # fmt: skip
        }
        (self.out / SUMMARY_FILE).write_text(
            json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        report = write_report(self.out, summary)
        print(f"\n{'type':<10} {'items':>5} {'accuracy':>9} {'blind':>6} {'chance':>7}  verdict")
        for result in results:
            print(f"{result.question_type:<10} {result.items:>5} {result.accuracy:>9.2f} "
                  f"{result.blind_accuracy:>6.2f} {result.chance:>7.2f}  {'pass' if result.passed else 'FAIL'}")  # fmt: skip
        total = sum(seconds for _, _, seconds in self.timings)
        print(f"\nreport: {report}\n{verdict_line(passed, self.quick)} ({total:.0f} s in all)")
        print(
            f"try it:\n  qilin chat --model {p['instruct']} --image IMAGE '{CHAT_QUESTION}'\n"
            f"  qilin serve --model {p['instruct']} --port 8000\n  qilin web --model {p['instruct']}"
        )
        return 0 if passed or self.quick else 1


def verdict_line(passed: bool, quick: bool) -> str:
    if quick:
        return "QUICK RUN: every step ran; too few training steps to judge learning"
    if passed:
        return (
            "PASSED: on every question type the model beats chance and its blind self: it reads the pictures"
        )
    return "FAILED: the model did not clearly beat chance and its blind self on every question type"


def real_chest_xray() -> str:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(REAL_CHEST_XRAY)
    if path is None:
        raise QilinError(f"pydicom-data's {REAL_CHEST_XRAY} is not installed: pip install pydicom-data")
    return str(path)
