"""Translation: achieved requests/s of `qilin data build --translator openai` at concurrency 32 against an
endpoint with 200 ms latency, as a fraction of the ideal (concurrency / latency); and a killed run's resume.

    .venv/bin/python benchmarks/translation_concurrency.py                   # 2,000 requests
    .venv/bin/python benchmarks/translation_concurrency.py --captions 5000 --latency 0.5

The endpoint is the project's fake OpenAI-compatible server (tests/data/fake_openai_server.py) on
127.0.0.1, answering every request after `--latency` seconds with a translation that passes the quality
checks. The sources are PMC-OA rows in the public JSONL layout, each caption a different English text
(as almost every ChiMed-VL text is), so each row costs one request. The build is the real command, `qilin data build --translator openai --base-url URL ... --translator-option
concurrency=32`, in a child process. Throughput is read at the server: answered requests over the time
from the first request's arrival to the last answer, so start-up and image work do not count; the
ideal is concurrency / latency. The fraction is printed as its two factors (see `Throughput`): how
many of the client's slots held a request on average, and the latency over how long the endpoint held a
request. The build's CPU seconds (the kernel's `wait4` rusage) say how much of its wall time the client
itself was busy.

Resume: the same build is started again against a fresh translation memory; the endpoint answers half
of its requests and leaves the rest hanging, the build is killed (SIGKILL) a second later, and run again
with the same memory. Every request of the resumed run whose text the killed run had been answered is a
repeated (paid twice) request; the target is 0. (The endpoint prints the connection resets the killed
build leaves behind: expected.)

The build sends the texts of `batch_size` rows at a time (its config's key; the project's default is 64),
each batch's before the batch ahead of it is written; the run measures the default and 1,024
(`--build-batch-sizes`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fake endpoint lives in the test suite, as a plain module

from tests.data.fake_openai_server import FakeChatServer, LoggedRequest  # noqa: E402

from qilin_med_vl.data.build_config import DEFAULT_BATCH_SIZE  # noqa: E402

KEY_ENV = "QILIN_BENCHMARK_KEY"
FIGURES = 50  # figures shared by the captions: image work stays small beside the translation
COMMIT_GRACE_S = 1.0  # time the killed build has to record the last answers it received


@dataclass(frozen=True)
class Throughput:
    """Answered requests over the time from the first arrival to the last answer, split in two factors:
    rate / ideal = (mean requests in flight / concurrency) x (latency / mean time a request was held).
    The first is the client's share (slots left empty between an answer and the next request), the
    second the endpoint's (time beyond `latency` to read, answer and write)."""

    answered: int
    span_s: float
    mean_in_flight: float
    mean_held_s: float

    @classmethod
    def of(cls, requests: list[LoggedRequest]) -> Throughput:
        done = [request for request in requests if request.answered_at is not None]
        span = max(request.answered_at for request in done) - min(request.arrived_at for request in done)
        held = [request.answered_at - request.arrived_at for request in done]
        return cls(len(done), span, sum(held) / span, sum(held) / len(held))

    @property
    def rate(self) -> float:
        return self.answered / self.span_s


def write_config(root: Path, batch_size: int) -> None:
    config = {
        "out": "built",
        "batch_size": batch_size,
        "sources": {"pmc_oa": {"records": "pmc_oa/pmc_oa.jsonl", "images": "pmc_oa/images"}},
    }
    (root / "build.yaml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML


def write_sources(root: Path, captions: int) -> Path:
    """PMC-OA in its public JSONL layout: `captions` different English captions over a few small figures."""
    images = root / "pmc_oa" / "images"
    images.mkdir(parents=True)
    for number in range(FIGURES):
        Image.new("RGB", (64, 64), (4 * number, 80, 120)).save(images / f"PMC{number:06d}_F1.jpg")
    with open(root / "pmc_oa" / "pmc_oa.jsonl", "w", encoding="utf-8") as handle:
        for n in range(captions):
            name = f"PMC{n % FIGURES:06d}_F1.jpg"
            caption = (
                f"Figure {n}: contrast-enhanced axial CT of patient {n} shows a {n % 50 + 3} mm lesion "
                f"in liver segment {n % 8 + 1}, with rim enhancement and no satellite nodules."
            )
            handle.write(
                json.dumps({"image": name, "caption": caption, "pmcid": f"PMC{n}", "url_name": name}) + "\n"
            )
    return root


def build(world: Path, server: FakeChatServer, out: Path, memory: Path, concurrency: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "qilin_med_vl.cli",
        "data",
        "build",
        "--config",
        "build.yaml",
        "--out",
        str(out),
        "--no-progress",
        "--translator",
        "openai",
        "--base-url",
        server.base_url,
        "--model",
        "fake-gpt",
        "--api-key-env",
        KEY_ENV,
        "--translator-option",
        f"concurrency={concurrency}",
        "--translator-option",
        f"cache_path={memory}",
    ]
    return subprocess.Popen(
        command,
        cwd=world,
        env={**os.environ, KEY_ENV: "k"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=2000, help="PMC-OA captions, each a different text")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the endpoint takes per answer")
    parser.add_argument(
        "--build-batch-sizes",
        type=int,
        nargs="+",
        default=[DEFAULT_BATCH_SIZE, 1024],
        help="the build config's batch_size, one build each (the resume uses the first)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        world = write_sources(Path(scratch) / "world", args.captions)
        ideal = args.concurrency / args.latency
        fractions = {}
        for batch_size in args.build_batch_sizes:
            write_config(world, batch_size)
            with FakeChatServer(latency_s=args.latency) as server:
                child = build(
                    world,
                    server,
                    world / f"full{batch_size}",
                    world / f"full{batch_size}.sqlite",
                    args.concurrency,
                )
                started = time.perf_counter()
                _, status, usage = os.wait4(child.pid, 0)
                wall = time.perf_counter() - started
                if os.waitstatus_to_exitcode(status) != 0:
                    raise SystemExit("the translated build failed")
                requests, in_flight = len(server.requests), server.max_in_flight
                measured = Throughput.of(server.requests)
            fractions[batch_size] = measured.rate / ideal
            print(
                f"batch_size {batch_size}: {requests:,} requests, at most {in_flight} in flight, "
                f"achieved {measured.rate:.1f} requests/s of an ideal {ideal:.1f} ({args.concurrency} / "
                f"{args.latency * 1000:.0f} ms): {measured.rate / ideal:.2f} = slots in use "
                f"{measured.mean_in_flight:.1f} / {args.concurrency} x held {args.latency * 1000:.0f} / "
                f"{measured.mean_held_s * 1000:.1f} ms; the build used "
                f"{usage.ru_utime + usage.ru_stime:.1f} CPU s in {wall:.1f} s",
                flush=True,
            )

        write_config(world, args.build_batch_sizes[0])
        with FakeChatServer(latency_s=args.latency) as server:
            half = requests // 2
            server.hold_after(half)  # later requests hang unanswered, as a dead endpoint's would
            killed = build(world, server, world / "resumed", world / "resumed.sqlite", args.concurrency)
            while server.answered_count() < half and killed.poll() is None:
                time.sleep(0.01)
            time.sleep(COMMIT_GRACE_S)
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=30)
            answered_before = {request.source for request in server.requests if request.answered}
            asked_before = len(server.requests)
            server.release()
            resumed = build(world, server, world / "resumed", world / "resumed.sqlite", args.concurrency)
            if resumed.wait(timeout=900) != 0:
                raise SystemExit("the resumed build failed")
            again = server.requests[asked_before:]
            repeated = sum(request.source in answered_before for request in again)
        print(
            f"resume: killed after {len(answered_before):,} answered texts; the resumed run sent {len(again):,} "
            f"requests, {repeated} of them for texts already answered"
        )
    shown = ", ".join(f"{fraction:.2f} (batch_size {size})" for size, fraction in fractions.items())
    print(f"fraction of ideal: {shown}; repeated requests after resume: {repeated}")


if __name__ == "__main__":
    main()
