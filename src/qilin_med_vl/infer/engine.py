"""The inference `Engine`: one loaded checkpoint answering chat requests, alone or in batches.

The terminal chat, the HTTP server and the web page are thin shells over this class.

How a request runs:
1. the conversation (HF-style messages whose image parts carry PIL images) is rendered with the
   checkpoint's own chat template and tokenised by its processor, which expands `<image>` into the
   image tokens and preprocesses the pixels;
2. image features (vision tower + projector) come from a per-engine LRU cache keyed by the SHA-256 of
   the preprocessed pixels, and only the missing ones are computed, in one vision call;
3. token embeddings are built, image features are scattered into the image-token positions, rows are
   left-padded to a common length, and the language model generates from `inputs_embeds`.

Why image features are cached rather than the KV cache: a multi-turn conversation re-renders its whole
prompt each turn, and an OpenAI client resends the image with every turn, so the cache key has to be
the image itself, not a session. Feature caching gives "encode the image once" to the terminal, the web
page and API clients alike, and works unchanged inside batches with left padding, where reusing a KV
prefix would tie a conversation to one padding layout. The price is a re-prefill of the text and image
tokens each turn: one parallel forward pass, cheap next to the decoding that follows.

Batching: requests that share sampling settings (`SamplingSettings.batch_key`) run in one `generate`
call with left padding and an attention mask; each row stops at its own EOS or its own token limit
(`_RowLimits`). Greedy decoding is deterministic, and a row's greedy answer in a batch equals its
answer alone. Sampling with a seed is reproducible for the same batch.

Streaming: `_RowStreamer` receives each decoding step's tokens for the whole batch and hands each row's
new text to a callback; a row's pieces concatenate exactly to its final answer. Text that ends inside
a multi-byte character (byte-fallback tokens) is held back until the character is complete.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from qilin_med_vl.errors import QilinError
from qilin_med_vl.infer.defaults import DEFAULT_IMAGE_CACHE_SIZE, DEFAULT_MAX_NEW_TOKENS

INCOMPLETE_CHARACTER = "\ufffd"  # what decoding yields for a partial UTF-8 sequence

# A message: {"role": "system" | "user" | "assistant", "content": str | list of parts}, where a part is
# {"type": "text", "text": str} or {"type": "image", "image": PIL.Image.Image}.
Message = dict
TextCallback = Callable[[int, str], None]  # (row index in the batch, new text)


class RequestError(QilinError):
    """A chat request the engine cannot run (bad roles, image count mismatch, bad settings)."""


@dataclass(frozen=True)
class SamplingSettings:
    """How to decode one request. temperature 0 means greedy (deterministic)."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise RequestError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise RequestError(f"temperature must be 0 (greedy) or positive, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise RequestError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def batch_key(self) -> tuple:
        """Requests with equal keys can share one `generate` call (max_new_tokens may differ)."""
        if self.greedy:
            return ("greedy",)
        return ("sample", self.temperature, self.top_p, self.seed)


@dataclass
class PreparedPrompt:
    input_ids: torch.Tensor  # (T,)
    pixel_values: torch.Tensor | None  # (images, 3, H, W)


@dataclass
class GenerationRequest:
    messages: list[Message]
    settings: SamplingSettings = field(default_factory=SamplingSettings)
    prepared: PreparedPrompt | None = field(default=None, repr=False)  # set by Engine.check


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    prompt_tokens: int
    finish_reason: str  # "stop" (EOS) or "length" (token limit)

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)


class _ImageFeatureCache:
    """LRU map from preprocessed pixels to projected image features; safe across threads."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(pixels: torch.Tensor) -> str:
        # pixels: (3, H, W); the dtype and shape join the bytes so different layouts never collide
        data = pixels.detach().to("cpu").contiguous()
        digest = hashlib.sha256(f"{data.dtype}{tuple(data.shape)}".encode())
        digest.update(data.numpy().tobytes())
        return digest.hexdigest()

    def get(self, key: str) -> torch.Tensor | None:
        with self._lock:
            features = self._entries.get(key)
            if features is not None:
                self._entries.move_to_end(key)
            return features

    def put(self, key: str, features: torch.Tensor) -> None:
        with self._lock:
            self._entries[key] = features
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


class _RowLimits(StoppingCriteria):
    """Per-row token limits, so rows with different max_new_tokens share one batch."""

    def __init__(self, prompt_length: int, limits: Sequence[int]):
        self.prompt_length = prompt_length
        self.limits = torch.tensor(list(limits))

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        # input_ids: (B, prompt_length + generated); with inputs_embeds only, prompt_length is 0
        generated = input_ids.shape[1] - self.prompt_length
        return (generated >= self.limits).to(input_ids.device)


class _RowStreamer(BaseStreamer):
    """Receives each decoding step for the whole batch and reports each row's new visible text."""

    def __init__(self, engine: Engine, limits: Sequence[int], on_text: TextCallback):
        self.engine = engine
        self.limits = list(limits)
        self.on_text = on_text
        self.tokens: list[list[int]] = [[] for _ in limits]
        self.emitted = ["" for _ in limits]
        self.finished = [False for _ in limits]
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate first hands over the prompt ids
            self.prompt_seen = True
            return
        step = value.reshape(len(self.limits), -1)[:, -1].tolist()  # (B,) new token per row
        for row, token in enumerate(step):
            if self.finished[row]:
                continue
            if token == self.engine.eos_token_id:
                self.finished[row] = True
            else:
                self.tokens[row].append(token)
                self.finished[row] = len(self.tokens[row]) >= self.limits[row]
            self._emit(row, final=self.finished[row])

    def end(self) -> None:
        for row in range(len(self.limits)):
            self._emit(row, final=True)

    def _emit(self, row: int, final: bool) -> None:
        text = self.engine.visible_text(self.tokens[row])
        if not final and text.endswith(INCOMPLETE_CHARACTER):
            return
        if text.startswith(self.emitted[row]) and len(text) > len(self.emitted[row]):
            self.on_text(row, text[len(self.emitted[row]) :])
            self.emitted[row] = text


class Engine:
    """A loaded checkpoint ready to answer; thread-safe (generation calls are serialised)."""

    def __init__(
        self, model, processor, image_cache_size: int = DEFAULT_IMAGE_CACHE_SIZE, name: str = "qilin"
    ):
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.name = name
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(processor.image_token)
        self.eos_token_id = self.tokenizer.eos_token_id
        self.pad_token_id = self.tokenizer.pad_token_id
        if self.pad_token_id is None:
            self.pad_token_id = self.eos_token_id
        self.context_length = int(model.config.get_text_config().max_position_embeddings)
        self._features = _ImageFeatureCache(image_cache_size)
        self._lock = threading.Lock()  # one generate call at a time
        # a fast tokenizer resets its padding/truncation state on every encode call, which fails when
        # another thread is using it at the same moment: encoding and decoding take turns
        self._tokenizer_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype="auto", device: str | None = None, **kwargs) -> Engine:
        from qilin_med_vl.model.checkpoint import load_checkpoint

        model, processor = load_checkpoint(path, dtype=dtype, device=device)
        kwargs.setdefault("name", Path(str(path)).name or str(path))
        return cls(model, processor, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    # -- public API -----------------------------------------------------------------------------------

    def generate(self, messages: list[Message], settings: SamplingSettings | None = None) -> Completion:
        return self.generate_batch([GenerationRequest(messages, settings or SamplingSettings())])[0]

    def stream(self, messages: list[Message], settings: SamplingSettings | None = None) -> Iterator[str]:
        """Yield the answer's text in pieces as it is decoded (generation runs in a worker thread)."""
        pieces: queue.Queue = queue.Queue()
        done = object()
        failure: list[BaseException] = []

        def work():
            try:
                self.generate_batch(
                    [GenerationRequest(messages, settings or SamplingSettings())],
                    on_text=lambda _row, text: pieces.put(text),
                )
            except BaseException as error:  # handed to the consumer thread below
                failure.append(error)
            finally:
                pieces.put(done)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        while (piece := pieces.get()) is not done:
            yield piece
        worker.join()
        if failure:
            raise failure[0]

    def generate_batch(
        self, requests: Sequence[GenerationRequest], on_text: TextCallback | None = None
    ) -> list[Completion]:
        """Answer many requests; those with equal `batch_key` share one left-padded `generate` call.

        `on_text(i, text)` receives request i's new text as it is decoded (from this thread)."""
        prepared = [self.check(request) for request in requests]
        groups: dict[tuple, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.settings.batch_key, []).append(index)
        results: list[Completion | None] = [None] * len(requests)
        with self._lock:
            for indices in groups.values():
                callback = None
                if on_text is not None:
                    callback = lambda row, text, indices=indices: on_text(indices[row], text)  # noqa: E731
                completions = self._generate_group(
                    [prepared[i] for i in indices], [requests[i].settings for i in indices], callback
                )
                for i, completion in zip(indices, completions, strict=True):
                    results[i] = completion
        return results

    def check(self, request: GenerationRequest) -> PreparedPrompt:
        """Prepare a request (kept on it) and refuse it if prompt plus answer exceed the context."""
        if request.prepared is None:
            request.prepared = self.prepare(request.messages)
        prompt_tokens = int(request.prepared.input_ids.shape[0])
        if prompt_tokens + request.settings.max_new_tokens > self.context_length:
            raise RequestError(
                f"the prompt ({prompt_tokens} tokens, images included) plus max_new_tokens "
                f"({request.settings.max_new_tokens}) exceed the model's context of {self.context_length} tokens; "
                "shorten the conversation or ask for fewer tokens"
            )
        return request.prepared

    def visible_text(self, token_ids: Sequence[int]) -> str:
        """The answer text users see for these generated tokens."""
        with self._tokenizer_lock:
            return self.tokenizer.decode(list(token_ids), skip_special_tokens=True).lstrip()

    # -- steps ----------------------------------------------------------------------------------------

    def prepare(self, messages: list[Message]) -> PreparedPrompt:
        """Render the chat template and tokenise, with `<image>` expanded and pixels preprocessed."""
        images: list[Image.Image] = []
        template_messages = []
        for number, message in enumerate(messages):
            if message.get("role") not in ("system", "user", "assistant"):
                raise RequestError(f"message {number}: role must be system, user or assistant")
            content = message.get("content")
            if isinstance(content, str):
                template_messages.append({"role": message["role"], "content": content})
                continue
            parts = []
            for part in content or []:
                if part.get("type") == "image":
                    if message["role"] != "user":
                        raise RequestError(f"message {number}: only user messages may hold images")
                    images.append(part["image"])
                    parts.append({"type": "image"})
                elif part.get("type") == "text":
                    parts.append({"type": "text", "text": part["text"]})
                else:
                    raise RequestError(
                        f"message {number}: unknown content part type {json.dumps(part.get('type'))}; "
                        "use text or image"
                    )
            template_messages.append({"role": message["role"], "content": parts})
        if not template_messages or template_messages[-1]["role"] != "user":
            raise RequestError("the last message must come from the user")
        placeholder = self.processor.image_token
        for number, message in enumerate(template_messages):
            content = message["content"]
            texts = (
                [content] if isinstance(content, str) else [p["text"] for p in content if p["type"] == "text"]
            )
            if any(placeholder in text for text in texts):
                # the processor would expand it into image tokens with no picture behind them
                raise RequestError(
                    f"message {number}: text may not contain the image placeholder {placeholder!r}; "
                    "send pictures as image parts"
                )
        with self._tokenizer_lock:
            return self._encode(template_messages, images)

    def _encode(self, template_messages: list[dict], images: list[Image.Image]) -> PreparedPrompt:
        prompt = self.processor.apply_chat_template(
            template_messages, add_generation_prompt=True, tokenize=False
        )
        if images:
            encoded = self.processor(images=images, text=prompt, return_tensors="pt")
            pixel_values = encoded["pixel_values"]  # (images, 3, H, W)
        else:
            encoded = self.processor(text=prompt, return_tensors="pt")
            pixel_values = None
        return PreparedPrompt(input_ids=encoded["input_ids"][0], pixel_values=pixel_values)

    def image_features(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Projected features for each image, (image tokens, hidden) each, computing only uncached ones."""
        keys = [_ImageFeatureCache.key(pixels) for pixels in pixel_values]
        found = {key: self._features.get(key) for key in keys}
        missing = [i for i, key in enumerate(keys) if found[key] is None]
        if missing:
            unique = list(dict.fromkeys(keys[i] for i in missing))
            first_of = {key: keys.index(key) for key in unique}
            batch = torch.stack([pixel_values[first_of[key]] for key in unique])  # (N, 3, H, W)
            parameter = next(self.model.parameters())
            with torch.inference_mode():
                features = self.model.get_image_features(
                    pixel_values=batch.to(device=self.device, dtype=parameter.dtype),
                    vision_feature_layer=self.model.config.vision_feature_layer,
                    vision_feature_select_strategy=self.model.config.vision_feature_select_strategy,
                )
            features = _as_per_image(features)
            for key, feature in zip(unique, features, strict=True):
                self._features.put(key, feature)
                found[key] = feature
        return [found[key] for key in keys]

    def _generate_group(
        self, rows: list[PreparedPrompt], settings: list[SamplingSettings], on_text: TextCallback | None
    ) -> list[Completion]:
        limits = [s.max_new_tokens for s in settings]
        inputs_embeds, attention_mask = self._batch_embeddings(rows)
        config = settings[0]
        generation = GenerationConfig(
            max_new_tokens=max(limits),
            do_sample=not config.greedy,
            temperature=config.temperature if not config.greedy else None,
            top_p=config.top_p if not config.greedy else None,
            top_k=None,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
        )
        streamer = _RowStreamer(self, limits, on_text) if on_text is not None else None
        seeded = config.seed is not None and not config.greedy
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices) if seeded else nullcontext(), torch.inference_mode():
            if seeded:
                torch.manual_seed(config.seed)
            output = self.model.generate(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                generation_config=generation,
                stopping_criteria=StoppingCriteriaList([_RowLimits(0, limits)]),
                streamer=streamer,
            )
        sequences = output if isinstance(output, torch.Tensor) else output.sequences  # (B, new tokens)
        completions = []
        for row, limit in enumerate(limits):
            generated = sequences[row].tolist()
            tokens, finish_reason = [], "length"
            for token in generated[:limit]:
                if token == self.eos_token_id:
                    finish_reason = "stop"
                    break
                tokens.append(token)
            completions.append(
                Completion(
                    text=self.visible_text(tokens),
                    token_ids=tokens,
                    prompt_tokens=int(rows[row].input_ids.shape[0]),
                    finish_reason=finish_reason,
                )
            )
        return completions

    def _batch_embeddings(self, rows: list[PreparedPrompt]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded input embeddings with image features in place: ((B, T, H), attention (B, T))."""
        length = max(int(row.input_ids.shape[0]) for row in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)  # (B, T)
        for index, row in enumerate(rows):
            size = int(row.input_ids.shape[0])
            input_ids[index, length - size :] = row.input_ids
            attention_mask[index, length - size :] = 1
            image_tokens = int((row.input_ids == self.image_token_id).sum())
            images = 0 if row.pixel_values is None else int(row.pixel_values.shape[0])
            if image_tokens and not images:
                raise RequestError("the text contains the image placeholder token but no image was given")
        pixel_values = [row.pixel_values for row in rows if row.pixel_values is not None]
        # all pictures of the batch in one vision call, in row order (images, tokens, hidden) -> list
        features = self.image_features(torch.cat(pixel_values)) if pixel_values else []
        found = sum(int(feature.shape[0]) for feature in features)
        expected = int((input_ids == self.image_token_id).sum())
        if found != expected:
            raise RequestError(f"the prompts hold {expected} image tokens but their images give {found}")
        input_ids = input_ids.to(self.device)
        attention_mask = attention_mask.to(self.device)
        with torch.inference_mode():
            embeds = self.model.get_input_embeddings()(input_ids)  # (B, T, H)
            if features:
                image_mask = (input_ids == self.image_token_id).unsqueeze(-1).expand_as(embeds)  # (B, T, H)
                stacked = torch.cat(features).to(device=embeds.device, dtype=embeds.dtype)  # (tokens, H)
                # masked_scatter fills positions in row-major order: row by row, image by image
                embeds = embeds.masked_scatter(image_mask, stacked)
        return embeds, attention_mask


def _as_per_image(features) -> list[torch.Tensor]:
    """`get_image_features` output as one (tokens, hidden) tensor per image."""
    if hasattr(features, "pooler_output") and not isinstance(features, torch.Tensor):
        features = features.pooler_output
    if isinstance(features, torch.Tensor):  # (N, tokens, hidden)
        return list(features.unbind(0))
    return list(features)
