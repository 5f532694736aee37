"""The OpenAI-compatible HTTP API (FastAPI): `POST /v1/chat/completions` (plain and SSE streaming),
`GET /v1/models`, `GET /health`.

Every request is checked before it reaches the model: size, API key, JSON, schema, model name, number
and size of images, max_tokens, context length. Each refusal is a 4xx in OpenAI's error shape and the
server carries on. Accepted requests go through a `BatchingWorker`, so concurrent clients share
batched `generate` calls. Logs name requests by id and counts only: no prompt text, no answers, no
image facts, so nothing from a study can leak into them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from qilin_med_vl.errors import QilinError
from qilin_med_vl.infer import openai_schema as schema
from qilin_med_vl.infer.batching import BatchingWorker
from qilin_med_vl.infer.defaults import (
    DEFAULT_BATCH_WAIT_S,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_IMAGES,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TOKENS_LIMIT,
)
from qilin_med_vl.infer.engine import Engine, GenerationRequest, RequestError, SamplingSettings
from qilin_med_vl.infer.images import ImageLimits, StudyOptions, load_url_image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSettings:
    model_name: str
    api_key: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_images_per_request: int = DEFAULT_MAX_IMAGES
    max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT
    default_max_tokens: int = DEFAULT_MAX_NEW_TOKENS
    image_limits: ImageLimits = field(default_factory=ImageLimits)
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_wait_s: float = DEFAULT_BATCH_WAIT_S


class ApiError(Exception):
    """A refusal with its HTTP status and OpenAI error fields."""

    def __init__(
        self, status: int, message: str, error_type: str = "invalid_request_error", code=None, param=None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param

    def response(self) -> JSONResponse:
        body = schema.error_body(self.message, self.error_type, code=self.code, param=self.param)
        return JSONResponse(body, status_code=self.status)


def create_app(engine: Engine, settings: ServerSettings) -> FastAPI:
    """The ASGI app; the batching worker starts and stops with the app's lifespan."""
    worker = BatchingWorker(engine, settings.max_batch_size, settings.batch_wait_s)
    created = int(time.time())

    async def lifespan(_app: FastAPI):
        worker.start()
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)

    app = FastAPI(title="Qilin-Med-VL", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.worker = worker

    @app.exception_handler(ApiError)
    async def on_api_error(_request: Request, error: ApiError):
        logger.info("refused: HTTP %d %s", error.status, error.code or error.error_type)
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, error: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        return ApiError(error.status_code, str(error.detail), code=code).response()

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, error: RequestValidationError):
        return validation_error(error.errors()).response()

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, error: Exception):
        logger.error("internal error: %s", type(error).__name__)
        return ApiError(
            500, "internal server error", error_type="server_error", code="internal_error"
        ).response()

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": settings.model_name}

    @app.get("/v1/models")
    async def models(request: Request):
        authorise(request, settings)
        return schema.model_list(settings.model_name, created)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        authorise(request, settings)
        body = await read_body(request, settings.max_request_bytes)
        chat = parse_request(body)
        if chat.model != settings.model_name:
            raise ApiError(
                404,
                f"model {chat.model!r} is not served here; this server serves {settings.model_name!r}",
                code="model_not_found",
                param="model",
            )
        generation = await run_in_threadpool(build_generation_request, chat, engine, settings)
        completion_id = schema.new_completion_id()
        images = sum(
            isinstance(part, dict) and part.get("type") == "image"
            for m in generation.messages
            for part in _parts(m)
        )
        logger.info(
            "%s: %d message(s), %d image(s), %d prompt tokens, stream=%s",
            completion_id,
            len(generation.messages),
            images,
            int(generation.prepared.input_ids.shape[0]),
            chat.stream,
        )
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            return StreamingResponse(
                stream_events(worker, generation, completion_id, settings.model_name, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        completion = await asyncio.wrap_future(worker.submit(generation))
        logger.info(
            "%s: %d completion tokens, %s",
            completion_id,
            completion.completion_tokens,
            completion.finish_reason,
        )
        return schema.completion_response(
            completion_id,
            settings.model_name,
            completion.text,
            completion.finish_reason,
            completion.prompt_tokens,
            completion.completion_tokens,
        )

    return app


def _parts(message: dict) -> list:
    content = message.get("content")
    return content if isinstance(content, list) else []


def authorise(request: Request, settings: ServerSettings) -> None:
    if settings.api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), settings.api_key.encode()
    ):
        raise ApiError(
            401, "invalid or missing API key (send Authorization: Bearer <key>)", code="invalid_api_key"
        )


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is over the limit of {limit} bytes", code="request_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes", code="request_too_large")
    return bytes(body)


def parse_request(body: bytes) -> schema.ChatCompletionRequest:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ApiError(
            400,
            f"request body is not valid JSON ({type(error).__name__}: {error})"[:300],
            code="invalid_json",
        ) from None
    if not isinstance(payload, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    try:
        return schema.ChatCompletionRequest.model_validate(payload)
    except ValidationError as error:
        raise validation_error(error.errors()) from None


def validation_error(errors: list) -> ApiError:
    first = errors[0] if errors else {}
    param = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or None
    message = (
        f"{param}: {first.get('msg', 'invalid value')}" if param else first.get("msg", "invalid request")
    )
    return ApiError(400, message, code="invalid_value", param=param)


def build_generation_request(
    chat: schema.ChatCompletionRequest, engine: Engine, settings: ServerSettings
) -> GenerationRequest:
    """Decode images, map roles and settings, and check the prompt fits (runs in a worker thread)."""
    max_tokens = chat.max_completion_tokens or chat.max_tokens or settings.default_max_tokens
    if max_tokens > settings.max_tokens_limit:
        raise ApiError(
            400,
            f"max_tokens {max_tokens} is over this server's limit of {settings.max_tokens_limit}",
            code="max_tokens_too_large",
            param="max_tokens",
        )
    image_count = sum(
        isinstance(part, schema.ImagePart)
        for message in chat.messages
        if isinstance(message.content, list)
        for part in message.content
    )
    if image_count > settings.max_images_per_request:
        raise ApiError(
            400,
            f"{image_count} images in one request; this server accepts at most {settings.max_images_per_request}",
            code="too_many_images",
            param="messages",
        )
    messages = []
    for number, message in enumerate(chat.messages):
        role = "system" if message.role == "developer" else message.role
        if message.content is None or isinstance(message.content, str):
            messages.append({"role": role, "content": message.content or ""})
            continue
        parts = []
        for part_number, part in enumerate(message.content):
            param = f"messages.{number}.content.{part_number}"
            if isinstance(part, schema.TextPart):
                parts.append({"type": "text", "text": part.text})
                continue
            if role != "user":
                raise ApiError(400, "only user messages may hold images", code="invalid_value", param=param)
            options = StudyOptions(
                part.image_url.window, part.image_url.frame, part.image_url.slice, part.image_url.axis
            )
            try:
                study = load_url_image(part.image_url.url, options, settings.image_limits)
            except QilinError as error:
                code = getattr(error, "reason", "bad_image")
                raise ApiError(400, f"{param}: {error}", code=code, param=param) from None
            parts.append({"type": "image", "image": study.image})
        messages.append({"role": role, "content": parts})
    try:
        sampling = SamplingSettings(
            max_new_tokens=max_tokens,
            temperature=1.0 if chat.temperature is None else chat.temperature,
            top_p=1.0 if chat.top_p is None else chat.top_p,
            seed=chat.seed,
        )
        generation = GenerationRequest(messages, sampling)
        engine.check(generation)
    except RequestError as error:
        raise ApiError(400, str(error), code="invalid_request") from None
    return generation


async def stream_events(
    worker: BatchingWorker, generation: GenerationRequest, completion_id: str, model: str, include_usage: bool
):
    """Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    future = worker.submit(
        generation, on_text=lambda _row, text: loop.call_soon_threadsafe(pieces.put_nowait, text)
    )
    finished = asyncio.wrap_future(future)
    finished.add_done_callback(lambda _f: pieces.put_nowait(None))

    def event(payload: dict) -> str:
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield event(schema.completion_chunk(completion_id, model, {"role": "assistant", "content": ""}))
    while (piece := await pieces.get()) is not None:
        yield event(schema.completion_chunk(completion_id, model, {"content": piece}))
    try:
        completion = finished.result()
    except Exception as error:
        logger.error("%s: generation failed: %s", completion_id, type(error).__name__)
        yield event(schema.error_body("generation failed", "server_error", code="internal_error"))
        yield "data: [DONE]\n\n"
        return
    logger.info(
        "%s: %d completion tokens, %s", completion_id, completion.completion_tokens, completion.finish_reason
    )
    yield event(schema.completion_chunk(completion_id, model, {}, finish_reason=completion.finish_reason))
    if include_usage:
        chunk = schema.completion_chunk(completion_id, model, {}, with_choice=False)
        chunk["usage"] = schema.usage(completion.prompt_tokens, completion.completion_tokens)
        yield event(chunk)
    yield "data: [DONE]\n\n"
