"""The demo's training recipes: the tiny model's three runs, sized to learn within minutes on 2 cores.

Each recipe is written as a YAML file into the demo's folder and run with `qilin train --config FILE`,
so what ran can be rerun by hand. `quick` cuts the steps for the smoke test in `make test`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

# shared by the three runs; the tiny model sees 64x64 pictures as 64 image tokens
COMMON = {
    "template": "chat",
    "max_length": 320,
    "per_device_train_batch_size": 16,
    "gradient_accumulation_steps": 1,
    "warmup_ratio": 0.03,
    "lr_scheduler_type": "cosine",
    "weight_decay": 0.0,
    # here a question's length follows its type, so length-grouped batches would hold one type each
    "sampling": "random",
    "save_steps": 1_000_000,  # no intermediate checkpoints: the demo keeps the final models only
    "save_total_limit": 1,
    "logging_steps": 10,
    "report_to": [],
    "device": "cpu",
}
# name -> (stage, learning rate, steps, steps when quick)
RUNS = {
    "text": ("instruction", 2e-3, 300, 4),  # the LLM learns the language: no picture
    "align": ("alignment", 1e-3, 150, 3),  # stage 1: the projector alone, as in the paper
    "instruct": ("instruction", 1e-3, 2000, 6),  # stage 2: projector + LLM, vision frozen
}


def write_recipe(name: str, folder: Path, model: Path, data: Path, seed: int, quick: bool) -> Path:
    """The YAML of run `name` (output in folder/name), ready for `qilin train --config`."""
    stage, learning_rate, steps, quick_steps = RUNS[name]
    recipe = {
        "stage": stage,
        "model": str(model),
        "data": str(data),
        "output_dir": str(folder / name),
        "learning_rate": learning_rate,
        "max_steps": quick_steps if quick else steps,
        "seed": seed,
        "progress_bar": not quick,
        **COMMON,
        "logging_steps": 1 if quick else COMMON["logging_steps"],
    }
    path = folder / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# qilin demo: the {name!r} run. Rerun: qilin train --config {path}\n"
    path.write_text(header + yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_build_recipe(synth: Path, folder: Path) -> Path:
    """The synthetic world's build config with its paths made absolute, so it runs from any folder."""
    config = yaml.safe_load((synth / "build.yaml").read_text(encoding="utf-8"))
    for source in config["sources"].values():
        records = source["records"] if isinstance(source["records"], list) else [source["records"]]
        source["records"] = [str((synth / path).resolve()) for path in records]
        source["images"] = str((synth / source["images"]).resolve())
    config.pop("out", None)  # the demo says where
    path = folder / "recipes" / "build.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# qilin demo: the build of {synth}. Rerun: qilin data build --config {path} --out OUT\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
