"""Turning --task NAME (the benchmark registry) or --task-factory MODULE:NAME (your own) into a Task."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from qilin_med_vl.errors import QilinError
from qilin_med_vl.eval.items import Task, TaskOptions


def known_tasks() -> dict:
    from qilin_med_vl.eval.tasks import TASKS

    return TASKS


def make_task(name: str | None, factory_spec: str | None, data_dir: Path, options: TaskOptions) -> Task:
    if (name is None) == (factory_spec is None):
        raise QilinError("give one of --task NAME (a known benchmark) or --task-factory MODULE:FUNCTION")
    if not data_dir.exists():
        raise QilinError(
            f"--data {data_dir}: no such folder or file; give the folder holding the benchmark's files"
        )
    if name is not None:
        tasks = known_tasks()
        if name not in tasks:
            raise QilinError(f"--task {name}: unknown task; known tasks: {', '.join(sorted(tasks))}")
        return tasks[name](data_dir, options)
    return _factory(factory_spec)(data_dir, options)


def _factory(spec: str):
    module_name, separator, attribute = spec.partition(":")
    if not separator or not module_name or not attribute:
        raise QilinError(f"--task-factory {spec}: write it as MODULE:FUNCTION, e.g. mybench.tasks:make_task")
    try:
        module = import_module(module_name)
    except ImportError as error:
        raise QilinError(f"--task-factory {spec}: cannot import {module_name} ({error})") from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise QilinError(f"--task-factory {spec}: {module_name} has no function {attribute}")
    return factory
