"""The OpenAI-compatible server, live on 127.0.0.1: the official `openai` client (plain, streaming,
32 concurrent clients), and raw malformed or hostile requests that must get 4xx errors in OpenAI's
shape while the server keeps serving."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import uvicorn
from PIL import Image

from qilin_med_vl.infer.engine import SamplingSettings
from qilin_med_vl.infer.images import ImageLimits
from qilin_med_vl.infer.server import ServerSettings, create_app

from .infer_helpers import draw_picture, free_port, leaked, named_study, user_message

API_KEY = "test-key-7f3a"
MODEL = "qilin-tiny"
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 1_000_000
MAX_TOKENS = 64


def data_url(image: Image.Image, media_type="image/png", fmt="PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return f"data:{media_type};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def image_part(url: str, **extra) -> dict:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def ask(text: str, image: Image.Image | None = None) -> list[dict]:
    content = [image_part(data_url(image))] if image is not None else []
    return [{"role": "user", "content": [*content, {"type": "text", "text": text}]}]


class LogRecords(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def server(engine):
    """A live server on a free loopback port; yields (base URL, app, captured log lines)."""
    settings = ServerSettings(
        model_name=MODEL,
        api_key=API_KEY,
        max_request_bytes=MAX_REQUEST_BYTES,
        max_images_per_request=2,
        max_tokens_limit=MAX_TOKENS,
        default_max_tokens=8,
        image_limits=ImageLimits(max_pixels=MAX_PIXELS),
        batch_wait_s=0.02,
    )
    app = create_app(engine, settings)
    logs = LogRecords()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(logs)
    root.setLevel(logging.DEBUG)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="debug")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app, logs
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)
        root.removeHandler(logs)
        root.setLevel(previous_level)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key=API_KEY, max_retries=0, timeout=60)


def test_plain_completion_matches_the_engine(client, engine):
    image = draw_picture(3)
    response = client.chat.completions.create(
        model=MODEL, messages=ask("这张图像显示了什么？", image), max_tokens=10, temperature=0
    )
    # the engine sees the picture after a PNG round trip, as the server does
    decoded = Image.open(io.BytesIO(base64.b64decode(data_url(image).split(",", 1)[1]))).convert("RGB")
    expected = engine.generate(
        [user_message("这张图像显示了什么？", decoded)], SamplingSettings(max_new_tokens=10)
    )
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected.text
    assert choice.finish_reason == expected.finish_reason
    assert response.model == MODEL
    assert response.usage.prompt_tokens == expected.prompt_tokens
    assert response.usage.completion_tokens == expected.completion_tokens


def test_streaming_chunks_concatenate_to_the_plain_answer(client):
    messages = ask("请描述图中的异常。", draw_picture(4))
    plain = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=16, temperature=0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_sse_wire_format_ends_with_done(server):
    body = {"model": MODEL, "messages": ask("你好"), "max_tokens": 4, "stream": True}
    with httpx.stream(
        "POST", f"{server[0]}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert httpx.get(f"{server[0]}/health").json()["status"] == "ok"


def big_png_url(width: int, height: int) -> str:
    return data_url(Image.new("1", (width, height)))


HOSTILE = [
    # (name, raw body or JSON payload, expected status, expected code)
    ("malformed JSON", b'{"model": "qilin-tiny", "messages": [', 400, "invalid_json"),
    ("not UTF-8", b"\xff\xfe\x00garbage", 400, "invalid_json"),
    ("deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),
    ("JSON array", b"[1, 2, 3]", 400, "invalid_json"),
    ("no messages", {"model": MODEL}, 400, "invalid_value"),
    ("empty messages", {"model": MODEL, "messages": []}, 400, "invalid_value"),
    (
        "unknown role",
        {"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]},
        400,
        "invalid_value",
    ),
    ("n=3", {"model": MODEL, "messages": ask("你好"), "n": 3}, 400, "invalid_value"),
    (
        "negative max_tokens",
        {"model": MODEL, "messages": ask("你好"), "max_tokens": -5},
        400,
        "invalid_value",
    ),
    (
        "huge max_tokens",
        {"model": MODEL, "messages": ask("你好"), "max_tokens": 10**9},
        400,
        "max_tokens_too_large",
    ),
    ("temperature 7", {"model": MODEL, "messages": ask("你好"), "temperature": 7}, 400, "invalid_value"),
    ("wrong model", {"model": "gpt-4o", "messages": ask("你好")}, 404, "model_not_found"),
    (
        "assistant last",
        {"model": MODEL, "messages": [*ask("你好"), {"role": "assistant", "content": "好"}]},
        400,
        "invalid_request",
    ),
    (
        "bad base64",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": [image_part("data:image/png;base64,@@@@")]}],
        },
        400,
        "bad_data_url",
    ),
    (
        "text disguised as PNG",
        {
            "model": MODEL,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        image_part("data:image/png;base64," + base64.b64encode(b"not a picture").decode())
                    ],
                }
            ],
        },
        400,
        "image_unreadable",
    ),
    (
        "text/html media type",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": [image_part("data:text/html;base64,PGI+")]}],
        },
        400,
        "unsupported_media_type",
    ),
    (
        "remote URL",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": [image_part("http://169.254.169.254/x.png")]}],
        },
        400,
        "remote_images_disabled",
    ),
    (
        "file URL",
        {"model": MODEL, "messages": [{"role": "user", "content": [image_part("file:///etc/passwd")]}]},
        400,
        "bad_image_url",
    ),
    (
        "too many pixels",
        {"model": MODEL, "messages": [{"role": "user", "content": [image_part(big_png_url(2000, 1000))]}]},
        400,
        "image_too_large",
    ),
    (
        "too many images",
        {
            "model": MODEL,
            "messages": [
                {"role": "user", "content": [image_part(data_url(draw_picture(i))) for i in range(3)]}
            ],
        },
        400,
        "too_many_images",
    ),
    (
        "image in assistant turn",
        {
            "model": MODEL,
            "messages": [
                {"role": "assistant", "content": [image_part(data_url(draw_picture(1)))]},
                *ask("你好"),
            ],
        },
        400,
        "invalid_value",
    ),
    (
        "image placeholder in text",
        {"model": MODEL, "messages": ask("<image><image>看")},
        400,
        "invalid_request",
    ),
    ("oversized body", b'{"model": "' + b"x" * (MAX_REQUEST_BYTES + 10) + b'"}', 413, "request_too_large"),
]


@pytest.mark.parametrize("name,body,status,code", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_requests_get_openai_shaped_errors(server, name, body, status, code):
    url = f"{server[0]}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(url, content=content, headers=headers, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"]


def test_wrong_or_missing_key_and_unknown_routes(server):
    base = server[0]
    body = {"model": MODEL, "messages": ask("你好")}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        response = httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{base}/v1/models").status_code == 401
    wrong_client = openai.OpenAI(base_url=f"{base}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong_client.chat.completions.create(model=MODEL, messages=ask("你好"))
    missing = httpx.get(f"{base}/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong_method = httpx.get(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"})
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_openai_client_raises_typed_errors(client):
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model=MODEL, messages=ask("你好"), max_tokens=MAX_TOKENS + 1)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other-model", messages=ask("你好"))


def test_thirty_two_concurrent_clients_are_batched(server, client):
    app = server[1]
    worker = app.state.worker
    before = len(worker.batch_sizes)
    prompts = [(f"第{i % 4}个问题：病灶在哪里？", draw_picture(i % 4)) for i in range(32)]

    def one(index: int):
        text, image = prompts[index]
        messages = ask(text, image)
        if index % 2:
            stream = client.chat.completions.create(
                model=MODEL, messages=messages, max_tokens=6, temperature=0, stream=True
            )
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        response = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6, temperature=0)
        return response.choices[0].message.content

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(one, range(32)))
    # the same question about the same picture gets the same greedy answer, batched or not
    for index, answer in enumerate(answers):
        assert answer == answers[index % 4], index
    sizes = worker.batch_sizes[before:]
    assert sum(sizes) == 32 and max(sizes) > 1
    assert httpx.get(f"{server[0]}/health").status_code == 200


def test_logs_hold_no_prompt_text(server, client):
    marker = "独特的问题标记XYZ"
    client.chat.completions.create(model=MODEL, messages=ask(marker, draw_picture(1)), max_tokens=4)
    lines = server[2].lines
    assert any("POST /v1/chat/completions" in line for line in lines)  # access and request logs are captured
    assert any("prompt tokens" in line for line in lines)
    assert not [line for line in lines if marker in line]


def dicom_url(data: bytes) -> str:
    return "data:application/dicom;base64," + base64.b64encode(data).decode()


def test_dicom_through_the_api_never_leaks_the_patient(server, client, engine):
    from qilin_med_vl.imaging.study import load_study

    study = named_study()
    messages = [
        {
            "role": "user",
            "content": [
                image_part(dicom_url(study), window="lung"),
                {"type": "text", "text": "肺部有异常吗？"},
            ],
        }
    ]
    plain = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0)
    expected = engine.generate(
        [user_message("肺部有异常吗？", load_study(study, window="lung").image)],
        SamplingSettings(max_new_tokens=10),
    )
    assert plain.choices[0].message.content == expected.text  # the lung window reached the model
    bodies = [plain.model_dump_json()]
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=10, temperature=0, stream=True
    )
    bodies += [chunk.model_dump_json() for chunk in stream]

    headers = {"Authorization": f"Bearer {API_KEY}"}
    refused = [
        image_part(dicom_url(study), frame=9),  # a frame the study does not have
        image_part(dicom_url(study), window="nonsense"),
        image_part(dicom_url(study[: len(study) // 2])),  # truncated pixel data
    ]
    for part in refused:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": [part, {"type": "text", "text": "?"}]}],
        }
        response = httpx.post(f"{server[0]}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert response.status_code == 400, response.text
        bodies.append(response.text)
    assert [leaked(body) for body in bodies] == [[] for _ in bodies]
    assert leaked("\n".join(server[2].lines)) == []
