"""The benchmark registry: `qilin eval --task NAME` builds `TASKS[NAME](data, options)`.

Each task reads its benchmark's public files from a local folder (nothing is downloaded) and checks
them before any item is asked; see docs/evaluation.md for the file layouts each one expects.
"""

from __future__ import annotations

from qilin_med_vl.eval.items import TaskFactory
from qilin_med_vl.eval.tasks.chimed_vl import ChimedVlTask
from qilin_med_vl.eval.tasks.omnimedvqa import OmniMedVqaTask
from qilin_med_vl.eval.tasks.pathvqa import PathVqaTask
from qilin_med_vl.eval.tasks.pmc_vqa import PmcVqaTask
from qilin_med_vl.eval.tasks.slake import SlakeTask
from qilin_med_vl.eval.tasks.vqa_rad import VqaRadTask

TASKS: dict[str, TaskFactory] = {
    task.name: task for task in (PmcVqaTask, SlakeTask, VqaRadTask, PathVqaTask, OmniMedVqaTask, ChimedVlTask)
}
