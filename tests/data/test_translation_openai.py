"""The `openai` translator against a fake OpenAI-compatible server on loopback: transient errors retried,
failed checks retried once with the reason then dropped, the concurrency bound, and a run killed mid-way
that resumes without any paid request repeated."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qilin_med_vl.config import ConfigError
from qilin_med_vl.data.translation import pairs as pairs_format
from qilin_med_vl.data.translation import reasons
from qilin_med_vl.data.translation.checks import CheckThresholds, check_translation
from qilin_med_vl.data.translation.config import Translation, TranslatorConfig
from qilin_med_vl.data.translation.factory import make_translator
from qilin_med_vl.data.translation.memory import TranslationMemory
from qilin_med_vl.data.translation.openai_backend import TranslationServiceError
from qilin_med_vl.errors import QilinError

KEY_ENV = "QILIN_TEST_TRANSLATION_KEY"


def _load_fake_server_module():
    # loaded by path: works whether or not tests/ is a package
    path = Path(__file__).with_name("fake_openai_server.py")
    spec = importlib.util.spec_from_file_location("fake_openai_server", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_openai_server", module)
    spec.loader.exec_module(module)
    return module


fake = _load_fake_server_module()

TEXTS = [
    "Axial CT of the chest shows a 3 cm nodule in the right upper lobe.",
    "The patient was treated with 500 mg of amoxicillin three times daily for 7 days.",
    "Histopathology revealed clusters of atypical cells (H&E, x400).",
    "Follow-up MRI after 6 months showed complete resolution of the lesion.",
]


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key")
    return "test-key"


def _config(server, tmp_path: Path, **overrides) -> TranslatorConfig:
    settings = dict(
        backend="openai",
        base_url=server.base_url,
        model="fake-gpt",
        api_key_env=KEY_ENV,
        cache_path=str(tmp_path / "tm.sqlite"),
        concurrency=4,
        timeout_s=0.5,
        max_retries=5,
        retry_backoff_s=0.001,
        retry_backoff_max_s=0.01,
    )
    settings.update(overrides)
    return TranslatorConfig(**settings)


def _translate(config: TranslatorConfig, texts: list[str]) -> tuple[list[Translation], object]:
    translator = make_translator(config)
    try:
        return translator.translate_batch(texts), translator.stats
    finally:
        translator.close()


def test_translations_come_back_in_order_checked_and_deduplicated(tmp_path, api_key):
    texts = [TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[2], "12.5", TEXTS[1]]
    with fake.FakeChatServer() as server:
        results, stats = _translate(_config(server, tmp_path), texts)
        assert [result.source for result in results] == texts
        for result in results:
            assert result.reason is None and result.text is not None
        assert results[4].text == "12.5"  # nothing English to translate: no request
        for result in results[:4]:
            assert result.text == fake.fake_chinese(result.source)
            assert check_translation(result.source, result.text, CheckThresholds()) is None
        assert server.requests_per_source() == {TEXTS[0]: 1, TEXTS[1]: 1, TEXTS[2]: 1}
        request = server.requests[0]
        assert request.model == "fake-gpt" and request.authorization == f"Bearer {api_key}"
        assert stats.translated == 3 and stats.requests == 3


def test_rate_limits_server_errors_timeouts_and_bad_bodies_are_retried_with_backoff(tmp_path, api_key):
    script = {TEXTS[0]: ["429", "500", "timeout", "malformed", "429"]}
    with fake.FakeChatServer(script, timeout_sleep_s=1.0) as server:
        results, stats = _translate(_config(server, tmp_path, timeout_s=0.3), [TEXTS[0], TEXTS[1]])
        assert [r.text for r in results] == [fake.fake_chinese(TEXTS[0]), fake.fake_chinese(TEXTS[1])]
        assert [r.behaviour for r in server.requests_for(TEXTS[0])] == [
            "429",
            "500",
            "timeout",
            "malformed",
            "429",
            "ok",
        ]
        assert stats.transient_retries == 5
    memory = TranslationMemory(tmp_path / "tm.sqlite")
    assert memory.translation("fake-gpt", "zh-v1", TEXTS[0]) == results[0].text
    memory.close()


def test_a_service_that_keeps_failing_drops_the_text_without_remembering_it(tmp_path, api_key):
    with fake.FakeChatServer({TEXTS[0]: ["500"] * 3}) as server:
        config = _config(server, tmp_path, max_retries=2)
        results, _ = _translate(config, [TEXTS[0]])
        assert results == [Translation(TEXTS[0], None, reasons.REQUEST_FAILED)]
        assert len(server.requests_for(TEXTS[0])) == 3
        # nothing was paid for, so a later run asks again (and now succeeds)
        results, _ = _translate(config, [TEXTS[0]])
        assert results[0].text == fake.fake_chinese(TEXTS[0])


def test_a_rejected_text_is_dropped_and_the_others_go_on(tmp_path, api_key):
    with fake.FakeChatServer({TEXTS[0]: ["400"]}) as server:
        results, _ = _translate(_config(server, tmp_path), TEXTS[:2])
        assert results[0] == Translation(TEXTS[0], None, reasons.REQUEST_REJECTED)
        assert results[1].text == fake.fake_chinese(TEXTS[1])


@pytest.mark.parametrize(
    ("behaviour", "reason"), [("english", reasons.NOT_CHINESE), ("drop_numbers", reasons.NUMBER_MISSING)]
)
def test_a_failed_check_is_retried_once_with_the_reason_then_dropped(tmp_path, api_key, behaviour, reason):
    with fake.FakeChatServer({TEXTS[1]: [behaviour, behaviour]}) as server:
        config = _config(server, tmp_path)
        results, stats = _translate(config, TEXTS[:2])
        assert results[1] == Translation(TEXTS[1], None, reason)
        assert results[0].text == fake.fake_chinese(TEXTS[0])
        first, second = server.requests_for(TEXTS[1])
        assert not first.is_retry and second.is_retry
        retry_instruction = second.messages[-1]["content"]
        assert reason in retry_instruction
        assert second.messages[-2] == {"role": "assistant", "content": first_answer(behaviour, TEXTS[1])}
        assert stats.check_retries == 1 and stats.dropped == {reason: 1}

        # the drop is remembered: a second run pays for nothing and gives the same outcome
        before = len(server.requests)
        again, stats = _translate(config, TEXTS[:2])
        assert again == results and len(server.requests) == before and stats.memory_hits == 2


def first_answer(behaviour: str, source: str) -> str:
    if behaviour == "english":
        return source
    return "".join(character for character in fake.fake_chinese(source) if not character.isdigit())


def test_a_retry_that_fixes_the_answer_keeps_it(tmp_path, api_key):
    with fake.FakeChatServer({TEXTS[1]: ["english"]}) as server:
        results, stats = _translate(_config(server, tmp_path), [TEXTS[1]])
        assert results[0].text == fake.fake_chinese(TEXTS[1])
        assert [r.behaviour for r in server.requests_for(TEXTS[1])] == ["english", "ok"]
        assert stats.dropped == {} and stats.check_retries == 1


def test_concurrency_bound_is_respected_and_reached(tmp_path, api_key):
    texts = [f"Case {number}: the lesion in the left kidney measured {number} mm." for number in range(24)]
    with fake.FakeChatServer(latency_s=0.05) as server:
        results, _ = _translate(_config(server, tmp_path, concurrency=3), texts)
        assert all(result.text is not None for result in results)
        assert server.max_in_flight == 3


def test_batches_in_flight_together_share_one_concurrency_bound(tmp_path, api_key):
    first = [f"Case {number}: the lesion in the left kidney measured {number} mm." for number in range(12)]
    second = [f"Case {number}: the cyst in the right ovary measured {number} mm." for number in range(12)]
    second.append(first[0])  # in both batches: asked once, the later batch waits for that answer
    with fake.FakeChatServer(latency_s=0.05) as server:
        translator = make_translator(_config(server, tmp_path, concurrency=3))
        try:
            futures = [translator.submit_batch(first), translator.submit_batch(second)]
            results = [future.result() for future in futures]
        finally:
            translator.close()
        assert server.max_in_flight == 3
        assert set(server.requests_per_source().values()) == {1}
    for texts, translations in zip([first, second], results, strict=True):
        assert [translation.text for translation in translations] == [fake.fake_chinese(t) for t in texts]


def test_a_fatal_answer_fails_its_own_batch_and_not_the_other_in_flight(tmp_path, api_key):
    with fake.FakeChatServer({TEXTS[2]: ["401"]}, latency_s=0.02) as server:
        translator = make_translator(_config(server, tmp_path))
        try:
            healthy, fatal = translator.submit_batch(TEXTS[:2]), translator.submit_batch(TEXTS[2:])
            with pytest.raises(TranslationServiceError, match="HTTP 401"):
                fatal.result()
            assert [result.text for result in healthy.result()] == [fake.fake_chinese(t) for t in TEXTS[:2]]
        finally:
            translator.close()


def test_glossary_is_sent_in_the_prompt_and_checked(tmp_path, api_key):
    glossary = tmp_path / "glossary.csv"
    glossary.write_text("english,chinese\nright upper lobe,右肺上叶\n", encoding="utf-8")
    with fake.FakeChatServer() as server:
        results, _ = _translate(_config(server, tmp_path, glossary_csv=str(glossary)), [TEXTS[0]])
        assert "右肺上叶" in results[0].text
        assert "- right upper lobe: 右肺上叶" in server.requests[0].messages[0]["content"]


def test_resume_after_a_kill_between_a_failed_check_and_its_retry(tmp_path, api_key):
    # the first answer failed and was remembered (attempt 1), then the run died: the resumed run sends only
    # the retry with the reason, never the first request again
    memory = TranslationMemory(tmp_path / "tm.sqlite")
    memory.record_failure("fake-gpt", "zh-v1", TEXTS[1], reasons.NUMBER_MISSING, "keep 500, 7", "无数字", 1)
    memory.close()
    with fake.FakeChatServer() as server:
        results, _ = _translate(_config(server, tmp_path), [TEXTS[1]])
        assert results[0].text == fake.fake_chinese(TEXTS[1])
        (request,) = server.requests_for(TEXTS[1])
        assert request.is_retry and reasons.NUMBER_MISSING in request.messages[-1]["content"]


def test_wrong_endpoint_or_key_stops_with_an_error(tmp_path, api_key):
    with fake.FakeChatServer({TEXTS[0]: ["401"]}) as server:
        with pytest.raises(TranslationServiceError, match="HTTP 401"):
            _translate(_config(server, tmp_path), [TEXTS[0]])


def test_missing_api_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with fake.FakeChatServer() as server:
        with pytest.raises(QilinError, match=KEY_ENV):
            make_translator(_config(server, tmp_path))


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ConfigError, match="concurrency"):
        make_translator(TranslatorConfig(backend="openai", concurrency=0, cache_path=str(tmp_path / "t")))
    with pytest.raises(ConfigError, match="backend"):
        make_translator(TranslatorConfig(backend="deepl"))
    with pytest.raises(ConfigError, match=r"concurrency is '8'; it must be int.*use_cmekg is 1"):
        make_translator(TranslatorConfig(backend="openai", concurrency="8", use_cmekg=1))


CHILD = """
import json, sys
from qilin_med_vl.data.translation import TranslatorConfig, make_translator
config = TranslatorConfig(**json.loads(sys.argv[1]))
translator = make_translator(config)
translator.translate_batch(json.loads(sys.argv[2]))
"""


def _memory_has_recorded(cache: Path, answered_per_request: dict[tuple[str, bool], int]) -> bool:
    """Whether the child committed every answer the server sent (a translation, or a failure attempt)."""
    if not cache.exists():
        return False
    with sqlite3.connect(cache) as db:
        done = {row[0] for row in db.execute("SELECT source FROM translations")}
        failed = dict(db.execute("SELECT source, attempts FROM failures").fetchall())
    for (source, is_retry), _ in answered_per_request.items():
        if source not in done and failed.get(source, 0) < (2 if is_retry else 1):
            return False
    return True


def test_a_killed_run_resumes_without_repeating_any_paid_request(tmp_path, api_key):
    texts = [
        f"Figure {n}: contrast-enhanced CT shows a {n} mm lesion in segment {n % 8 + 1}." for n in range(30)
    ]
    always_english, english_once = texts[3], texts[5]
    script = {always_english: ["english", "english"], english_once: ["english"]}
    cache = tmp_path / "tm.sqlite"
    with fake.FakeChatServer(script, latency_s=0.01) as server:
        config = _config(server, tmp_path, concurrency=2)
        server.hold_after(12)
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(config.__dict__), json.dumps(texts)],
            env={**os.environ, KEY_ENV: api_key},
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                answered = {(r.source, r.is_retry): 1 for r in server.requests if r.answered}
                if server.answered_count() >= 12 and _memory_has_recorded(cache, answered):
                    break
                assert child.poll() is None, "the child ended before it was killed"
                time.sleep(0.02)
            else:
                pytest.fail("the child never got 12 answers")
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
        answered_before_kill = server.answered_count()
        assert answered_before_kill == 12
        with sqlite3.connect(cache) as db:
            outcomes_before_kill = db.execute("SELECT COUNT(*) FROM translations").fetchone()[0]
            outcomes_before_kill += db.execute("SELECT COUNT(*) FROM failures WHERE attempts = 2").fetchone()[
                0
            ]
        assert (
            outcomes_before_kill >= 10
        )  # 12 answers; at most 2 are first attempts that leave a retry pending
        server.release()

        results, stats = _translate(config, texts)

        assert stats.memory_hits == outcomes_before_kill  # what the killed run paid for is served from memory
        assert server.answered_count() > answered_before_kill  # the resumed run did the rest
        # every answered request was a different (text, attempt): nothing paid twice
        paid = [(r.source, r.is_retry) for r in server.requests if r.answered]
        assert len(paid) == len(set(paid))
        # every text ends translated, or dropped with the reason of its failed check
        for result in results:
            if result.source == always_english:
                assert result == Translation(always_english, None, reasons.NOT_CHINESE)
            else:
                assert result.text == fake.fake_chinese(result.source) and result.reason is None


def test_imported_pairs_are_served_without_a_request(tmp_path, api_key):

    pairs = tmp_path / "pairs.jsonl"
    pairs_format.write_pairs(pairs, "jsonl", [(TEXTS[0], "我们自己的译文：胸部CT显示右肺上叶3 cm结节。")])
    memory = TranslationMemory(tmp_path / "tm.sqlite")
    memory.import_pairs("fake-gpt", "zh-v1", pairs_format.read_pairs(pairs, "jsonl"))
    memory.close()
    with fake.FakeChatServer() as server:
        results, stats = _translate(_config(server, tmp_path), TEXTS[:2])
        assert results[0].text == "我们自己的译文：胸部CT显示右肺上叶3 cm结节。"
        assert server.requests_per_source() == {TEXTS[1]: 1}
        assert stats.memory_hits == 1


def test_backoff_doubles_is_jittered_honours_retry_after_and_is_capped(tmp_path, api_key):
    config = TranslatorConfig(
        backend="openai",
        api_key_env=KEY_ENV,
        cache_path=str(tmp_path / "tm.sqlite"),
        retry_backoff_s=1.0,
        retry_backoff_max_s=20.0,
    )
    translator = make_translator(config)
    try:
        for attempt, (low, high) in enumerate([(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, 8.0)]):
            delays = [translator._backoff_seconds(attempt, None) for _ in range(50)]
            assert low <= min(delays) and max(delays) <= high and len(set(delays)) > 1
        assert translator._backoff_seconds(0, 7.0) == 7.0  # the server's Retry-After wins when longer
        assert translator._backoff_seconds(10, None) == 20.0  # capped
        assert translator._backoff_seconds(0, 300.0) == 20.0
    finally:
        translator.close()


def test_an_unreachable_endpoint_stops_the_batch_and_keeps_what_was_paid(tmp_path, api_key):
    script = {TEXTS[1]: ["timeout"] * 3}  # never answered within timeout_s, on every attempt
    with fake.FakeChatServer(script, timeout_sleep_s=1.0) as server:
        translator = make_translator(_config(server, tmp_path, timeout_s=0.2, max_retries=2))
        try:
            with pytest.raises(
                QilinError, match=r"cannot reach .*1 request\(s\) got no answer after 2 retries"
            ):
                translator.translate_batch([TEXTS[0], TEXTS[1]])
        finally:
            translator.close()
    memory = TranslationMemory(tmp_path / "tm.sqlite")
    assert memory.translation("fake-gpt", "zh-v1", TEXTS[0])  # the answered text stays paid for
    memory.close()


def test_a_build_against_a_closed_port_exits_with_the_reason(tmp_path, api_key, capsys):
    import socket

    from qilin_med_vl.cli import main
    from tests.published_sources import write_published_sources

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_published_sources(tmp_path)
    code = main(["data", "build", "--config", str(config), "--no-progress", "--translator", "openai",
                 "--base-url", f"http://127.0.0.1:{port}/v1", "--api-key-env", KEY_ENV,
                 "translator.max_retries=1", "translator.retry_backoff_s=0.01"])  # fmt: skip
    assert code == 1
    assert f"cannot reach http://127.0.0.1:{port}/v1/chat/completions" in capsys.readouterr().err
