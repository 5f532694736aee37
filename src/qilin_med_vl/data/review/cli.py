"""`qilin data review export|import`: an expert review loop for a build's machine translations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qilin_med_vl.llava_format import DEFAULT_BUILD_OUT

DEFAULT_SHEET = "review/review-sample.xlsx"  # under the build folder


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Review machine translations: export a stratified sample of a build's translations (by source, "
        "field, length and check results) as XLSX and CSV with columns for a verdict and a correction; "
        "import the filled-in sheet into the translation memory as reviewed translations, which the next "
        "`qilin data build` uses without a request. Guide: docs/conversations_and_review.md."
    )
    actions = parser.add_subparsers(dest="review_action", metavar="<action>")
    exporter = actions.add_parser(
        "export",
        help="write a stratified sample of a build's translations to review (XLSX and CSV)",
        description="Write N translations of the build, stratified by source, field, length band, memory "
        "state and check verdict, to FILE.xlsx and FILE.csv (same rows). Translations already reviewed "
        "are left out unless --include-reviewed.",
    )
    _add_build_argument(exporter)
    exporter.add_argument("--sample", type=int, required=True, metavar="N", help="how many translations")
    exporter.add_argument(
        "--file",
        type=Path,
        default=None,
        help=f"the XLSX to write; the CSV goes beside it (default OUT/{DEFAULT_SHEET})",
    )
    exporter.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    exporter.add_argument("--include-reviewed", action="store_true", help="sample reviewed translations too")
    exporter.set_defaults(handler=_export)

    importer = actions.add_parser(
        "import",
        help="store a filled-in review sheet in the translation memory and report agreement",
        description="Read the verdicts and corrections of an exported sheet (.xlsx or .csv), store them in the "
        "build's translation memory as reviewed, and report the share accepted and the mean character edit "
        "distance, in total and per check verdict. Rebuild with the same command to use them.",
    )
    importer.add_argument("file", type=Path, help="the filled-in .xlsx or .csv")
    _add_build_argument(importer)
    importer.set_defaults(handler=_import)
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)


def _add_build_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_BUILD_OUT,
        help=f"the build folder, whose manifest names its memory (default {DEFAULT_BUILD_OUT})",
    )


def _export(args: argparse.Namespace) -> int:
    from qilin_med_vl.data.review.items import review_items, review_target
    from qilin_med_vl.data.review.sample import stratified_sample
    from qilin_med_vl.data.review.sheets import fits_a_worksheet, write_csv, write_xlsx
    from qilin_med_vl.data.translation.memory import ORIGIN_REVIEW
    from qilin_med_vl.errors import QilinError

    if args.sample < 1:
        raise QilinError(f"--sample {args.sample}: give the number of translations to review, 1 or more")
    target = review_target(args.out)
    items = [item for item in review_items(target) if args.include_reviewed or item.state != ORIGIN_REVIEW]
    unfit = [item for item in items if not fits_a_worksheet(item)]
    items = [item for item in items if fits_a_worksheet(item)]
    sample = stratified_sample(items, args.sample, args.seed)
    xlsx = args.file or args.out / DEFAULT_SHEET
    xlsx = xlsx.with_suffix(".xlsx")
    xlsx.parent.mkdir(parents=True, exist_ok=True)
    write_xlsx(xlsx, sample, target.model, target.prompt_version)
    write_csv(xlsx.with_suffix(".csv"), sample, target.model, target.prompt_version)
    print(f"wrote {len(sample)} of {len(items)} translations to {xlsx} and {xlsx.with_suffix('.csv')}")
    if unfit:
        print(f"  {len(unfit)} translations with control characters a worksheet cannot hold were left out")
    return 0


def _import(args: argparse.Namespace) -> int:
    from qilin_med_vl.data.review.agreement import agreement
    from qilin_med_vl.data.review.apply import apply_review, judgement
    from qilin_med_vl.data.review.items import review_target
    from qilin_med_vl.data.review.sheets import read_sheet

    target = review_target(args.out)
    decisions = apply_review(target.memory_path, read_sheet(args.file), args.file)
    report = agreement(judgement(decision) for decision in decisions)
    stored = sum(decision.text is not None for decision in decisions)
    report_path = args.file.with_name(args.file.stem + ".agreement.json")
    report_path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(
        f"{args.file}: {report['reviewed']} reviewed ({report['accepted']} accepted, {report['fixed']} fixed, "
        f"{report['rejected']} rejected); {stored} stored in {target.memory_path} as reviewed"
    )
    if report["reviewed"]:
        print(
            f"  accepted share {report['accepted_share']:.2f}, mean edit distance "
            f"{report['mean_edit_distance'] if report['mean_edit_distance'] is not None else '-'} characters"
        )
        for check, figures in report["per_check"].items():
            print(
                f"  {check}: {figures['reviewed']} reviewed, accepted share {figures['accepted_share']:.2f}, "
                f"mean edit distance {figures['mean_edit_distance'] if figures['mean_edit_distance'] is not None else '-'}"
            )
    print(f"wrote {report_path}; rebuild with the same `qilin data build` command to use the reviewed texts")
    return 0
