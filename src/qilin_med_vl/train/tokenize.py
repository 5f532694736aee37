"""Turn one conversation record into `input_ids` and `labels`, with `<image>` expanded and answers supervised.

How: render the whole conversation with the stage's template, find the character span of every
assistant answer (its text and end-of-turn token) by rendering the conversation prefix by prefix,
expand `<image>` to the processor's image-token count, tokenize once with offsets, and supervise
exactly the tokens inside answer spans. Two checks replace the upstream code's silent masking:
no token may straddle an answer boundary, and the prompt as rendered for generation must tokenize to a
prefix of the training sequence (what the model sees at inference is what it was trained on); either
failure raises `TemplateMismatchError` naming the record. Truncation to `max_length` happens after
expansion; a record whose image tokens or every answer token would be cut is dropped with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from qilin_med_vl.errors import DataError
from qilin_med_vl.model.chat_template import CHAT_TEMPLATES
from qilin_med_vl.train.records import ConversationRecord

IGNORE_INDEX = -100  # label of unsupervised positions (PyTorch cross-entropy's ignore_index)
PLAIN_SEPARATOR = "\n"  # LLaVA's conv_llava_plain: image tokens, caption, newline


class TemplateMismatchError(DataError):
    """The chat template and the tokenizer disagree on where an answer starts or ends."""


class SampleDropped(Exception):  # noqa: N818 - a control-flow signal, not an error the user sees raw
    """A record that cannot be used as it is; `reason` is a short code counted in the run summary."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass
class TokenizedSample:
    input_ids: list[int]
    labels: list[int]
    image: str | None
    truncated: bool


def image_tokens_per_image(processor) -> int:
    """How many tokens the processor expands one `<image>` into (asked of the processor itself)."""
    crop = processor.image_processor.crop_size
    probe = Image.new("RGB", (crop["width"], crop["height"]))
    encoded = processor(images=[probe], text=processor.image_token, add_special_tokens=False)
    return sum(1 for token in encoded["input_ids"][0] if token == processor.image_token_id)


def resolve_chat_template(processor, template: str) -> str | None:
    """The Jinja template of a stage: `chat` = the processor's own, `vicuna_v1`, `llm` = the LLM
    tokenizer's own; None for `plain` (no template)."""
    if template == "plain":
        return None
    if template == "chat":
        if not processor.chat_template:
            raise DataError("template `chat`: the model's processor has no chat template; use vicuna_v1")
        return processor.chat_template
    if template == "llm":
        own = processor.tokenizer.chat_template
        if not own:
            raise DataError("template `llm`: the LLM's tokenizer has no chat template; use vicuna_v1")
        return own
    return CHAT_TEMPLATES[template]


class ConversationTokenizer:
    """Callable: ConversationRecord -> TokenizedSample (raises SampleDropped or DataError)."""

    def __init__(self, processor, template: str = "chat", max_length: int = 2048):
        self.tokenizer = processor.tokenizer
        self.image_token = processor.image_token
        self.image_token_id = processor.image_token_id
        self.num_image_tokens = image_tokens_per_image(processor)
        self.template = template
        self.chat_template = resolve_chat_template(processor, template)
        self.max_length = max_length

    # -- rendering -------------------------------------------------------------------------------
    def _render(self, turns: list[tuple[str, str]], generation_prompt: bool) -> str:
        messages = [{"role": role, "content": text} for role, text in turns]
        return self.tokenizer.apply_chat_template(
            messages,
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )

    def _render_with_spans(self, record: ConversationRecord) -> tuple[str, list[tuple[int, int]], list[str]]:
        """(full text, answer character spans, prompt texts for generation before each answer)."""
        if self.chat_template is None:
            if len(record.turns) != 2 or record.image is None:
                raise DataError(
                    f"{record.name}: template `plain` takes one image and one caption "
                    "(a human turn and a gpt turn); use template `chat` for multi-turn or text-only data"
                )
            # LLaVA's released pretraining code: the human turn is replaced by the image alone.
            prompt = self.image_token
            text = prompt + record.turns[1][1] + PLAIN_SEPARATOR
            return text, [(len(prompt), len(text))], [prompt]
        text = self._render(record.turns, generation_prompt=False)
        spans, prompts = [], []
        for index in range(1, len(record.turns), 2):
            prompt = self._render(record.turns[:index], generation_prompt=True)
            with_answer = self._render(record.turns[: index + 1], generation_prompt=False)
            if not (with_answer.startswith(prompt) and text.startswith(with_answer)):
                raise TemplateMismatchError(
                    f"{record.name}: turn {index}: the chat template's generation prompt {prompt[-20:]!r} is not "
                    "how it renders the start of the answer (or it rewrites earlier turns), so the answer cannot "
                    "be located and inference would not match training. Use template vicuna_v1 or fix the template."
                )
            spans.append((len(prompt), len(with_answer)))
            prompts.append(prompt)
        return text, spans, prompts

    # -- tokenizing ------------------------------------------------------------------------------
    def _expand(self, text: str) -> str:
        return text.replace(self.image_token, self.image_token * self.num_image_tokens)

    def _shift(self, text: str, position: int) -> int:
        """Where character `position` of `text` lands once `<image>` is expanded."""
        images_before = text[:position].count(self.image_token)
        return position + images_before * (self.num_image_tokens - 1) * len(self.image_token)

    def _encode(self, text: str, offsets: bool = False):
        starts_with_bos = bool(self.tokenizer.bos_token) and text.startswith(self.tokenizer.bos_token)
        return self.tokenizer(
            self._expand(text),
            add_special_tokens=not starts_with_bos,  # a template that writes BOS itself gets no second
            return_offsets_mapping=offsets,
        )

    def __call__(self, record: ConversationRecord) -> TokenizedSample:
        text, spans, prompts = self._render_with_spans(record)
        placeholders = text.count(self.image_token)
        expected = 1 if record.image else 0
        if placeholders != expected:
            fix = (
                "put one <image> in the first human turn" if record.image else "remove <image> or add `image`"
            )
            raise DataError(
                f"{record.name}: {placeholders} <image> placeholders for {expected} image(s); {fix}"
            )

        encoded = self._encode(text, offsets=True)
        input_ids: list[int] = encoded["input_ids"]
        labels = [IGNORE_INDEX] * len(input_ids)
        for (start, end), prompt in zip(spans, prompts, strict=True):
            start, end = self._shift(text, start), self._shift(text, end)
            first = None
            for index, (token_start, token_end) in enumerate(encoded["offset_mapping"]):
                if token_start == token_end:
                    continue  # special tokens added by the tokenizer's post-processor
                if token_start < start < token_end or token_start < end < token_end:
                    raise TemplateMismatchError(
                        f"{record.name}: token {self.tokenizer.convert_ids_to_tokens(input_ids[index])!r} "
                        "straddles an answer boundary: the tokenizer merges the template's text with the "
                        "answer. Use a template whose role markers end on a token boundary (vicuna_v1)."
                    )
                if start <= token_start and token_end <= end:
                    labels[index] = input_ids[index]
                    first = index if first is None else first
            prompt_ids = self._encode(prompt)["input_ids"]
            if first is None or input_ids[:first] != prompt_ids:
                raise TemplateMismatchError(
                    f"{record.name}: the generation prompt tokenizes differently from the same text inside "
                    "the training sequence, so inference would not match training. Check that the "
                    "tokenizer and the chat template belong together."
                )
        return self._truncate(record, input_ids, labels)

    def _truncate(
        self, record: ConversationRecord, input_ids: list[int], labels: list[int]
    ) -> TokenizedSample:
        truncated = len(input_ids) > self.max_length
        if truncated:
            image_positions = [i for i, token in enumerate(input_ids) if token == self.image_token_id]
            if image_positions and image_positions[-1] >= self.max_length:
                raise SampleDropped(
                    "image_tokens_cut",
                    f"{record.name}: {len(input_ids)} tokens; max_length {self.max_length} would cut the image",
                )
            input_ids, labels = input_ids[: self.max_length], labels[: self.max_length]
        if all(label == IGNORE_INDEX for label in labels):
            raise SampleDropped(
                "no_answer_tokens",
                f"{record.name}: no answer token fits within max_length {self.max_length}",
            )
        return TokenizedSample(input_ids=input_ids, labels=labels, image=record.image, truncated=truncated)
