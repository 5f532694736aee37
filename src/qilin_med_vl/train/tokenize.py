"""Turn one conversation record into `input_ids` and `labels`, with `<image>` expanded and answers supervised.

How: put `<image>` where LLaVA's training code puts it (the front of its turn, then a newline; or as
written, `image_placement: as_written`), render the whole conversation with the stage's template, find
the character span of every assistant answer (its text and end-of-turn token), expand `<image>` to the
processor's image-token count, tokenize once with offsets, and supervise exactly the tokens inside
answer spans.

Answer spans in time linear in the number of turns: the conversation is rendered once more with each
answer replaced by a marker, which gives where every answer's text sits; the last answer's span is
measured exactly (the generation prompt rendered for the conversation before it), and every earlier
answer must be framed by the same strings before and after its text. A template for which that does
not hold (it frames the last turn differently) falls back to rendering the conversation prefix by
prefix, which is exact for any template and quadratic in the number of turns.

Two checks replace the upstream code's silent masking: no token may straddle an answer boundary, and
the prompt rendered for generation before the last answer must tokenize to a prefix of the training
sequence (what the model sees at inference is what it was trained on); either failure raises
`TemplateMismatchError` naming the record. Truncation to `max_length` happens after expansion; a record
whose image tokens or every answer token would be cut is dropped with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from qilin_med_vl.errors import DataError
from qilin_med_vl.model.chat_template import CHAT_TEMPLATES
from qilin_med_vl.train.records import ConversationRecord

IGNORE_INDEX = -100  # label of unsupervised positions (PyTorch cross-entropy's ignore_index)
PLAIN_SEPARATOR = "\n"  # LLaVA's conv_llava_plain: image tokens, caption, newline
IMAGE_FRONT, IMAGE_AS_WRITTEN = "front", "as_written"
IMAGE_PLACEMENTS = (IMAGE_FRONT, IMAGE_AS_WRITTEN)
# Stand-ins for answer texts while locating them in a rendering (Unicode private-use characters).
MARKER_OPEN, MARKER_CLOSE = "\ue000", "\ue001"


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


def place_image_first(text: str, image_token: str) -> str:
    """LLaVA's `preprocess_multimodal`: `<image>` taken out, the text stripped, `<image>\\n` put in front."""
    if image_token not in text:
        return text
    return (image_token + "\n" + text.replace(image_token, "").strip()).strip()


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

    def __init__(
        self,
        processor,
        template: str = "chat",
        max_length: int = 2048,
        image_placement: str = IMAGE_FRONT,
    ):
        if image_placement not in IMAGE_PLACEMENTS:
            raise DataError(
                f"image_placement {image_placement!r} is not one of {', '.join(IMAGE_PLACEMENTS)}"
            )
        self.tokenizer = processor.tokenizer
        self.image_token = processor.image_token
        self.image_token_id = processor.image_token_id
        self.num_image_tokens = image_tokens_per_image(processor)
        self.template = template
        self.chat_template = resolve_chat_template(processor, template)
        self.max_length = max_length
        self.image_placement = image_placement

    # -- rendering -------------------------------------------------------------------------------
    def _render(self, turns: list[tuple[str, str]], generation_prompt: bool) -> str:
        messages = [{"role": role, "content": text} for role, text in turns]
        return self.tokenizer.apply_chat_template(
            messages,
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )

    def placed(self, turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The turns with `<image>` where training puts it (`image_placement`)."""
        if self.image_placement == IMAGE_AS_WRITTEN:
            return turns
        return [(role, place_image_first(text, self.image_token)) for role, text in turns]

    def _mismatch(self, name: str, turn: int, prompt: str) -> TemplateMismatchError:
        return TemplateMismatchError(
            f"{name}: turn {turn}: the chat template's generation prompt {prompt[-20:]!r} is not "
            "how it renders the start of the answer (or it rewrites earlier turns), so the answer cannot "
            "be located and inference would not match training. Use template vicuna_v1 or fix the template."
        )

    def spans_by_prefixes(self, turns: list[tuple[str, str]], name: str) -> tuple[str, list[tuple[int, int]]]:
        """(full text, answer character spans), exact for any template: one rendering per answer prefix."""
        text = self._render(turns, generation_prompt=False)
        spans = []
        for index in range(1, len(turns), 2):
            prompt = self._render(turns[:index], generation_prompt=True)
            with_answer = self._render(turns[: index + 1], generation_prompt=False)
            if not (with_answer.startswith(prompt) and text.startswith(with_answer)):
                raise self._mismatch(name, index, prompt)
            spans.append((len(prompt), len(with_answer)))
        return text, spans

    def _answer_texts_in(self, turns: list[tuple[str, str]], text: str) -> list[tuple[int, int]] | None:
        """Where each answer's text sits in `text` (found through a marked rendering), or None."""
        if MARKER_OPEN in text or MARKER_CLOSE in text:
            return None
        answers = list(range(1, len(turns), 2))
        marked = list(turns)
        for number, index in enumerate(answers):
            marked[index] = (turns[index][0], f"{MARKER_OPEN}{number}{MARKER_CLOSE}")
        rendering = self._render(marked, generation_prompt=False)
        pieces, places, cursor = [], [], 0
        for number, index in enumerate(answers):
            marker = f"{MARKER_OPEN}{number}{MARKER_CLOSE}"
            at = rendering.find(marker, cursor)
            if at < 0 or rendering.count(marker) != 1:
                return None
            pieces.append(rendering[cursor:at])
            start = sum(map(len, pieces))
            pieces.append(turns[index][1])
            places.append((start, start + len(turns[index][1])))
            cursor = at + len(marker)
        pieces.append(rendering[cursor:])
        # the template must insert answers verbatim (no trimming, no escaping) for the places to hold
        return places if "".join(pieces) == text else None

    def answer_spans(self, turns: list[tuple[str, str]], name: str) -> tuple[str, list[tuple[int, int]], str]:
        """(full text, answer character spans, generation prompt before the last answer)."""
        text = self._render(turns, generation_prompt=False)
        last_prompt = self._render(turns[:-1], generation_prompt=True)
        if not text.startswith(last_prompt):
            raise self._mismatch(name, len(turns) - 1, last_prompt)
        if len(turns) == 2:
            return text, [(len(last_prompt), len(text))], last_prompt
        places = self._answer_texts_in(turns, text)
        if places is not None:
            lead = text[len(last_prompt) : places[-1][0]]  # between the generation prompt and the answer
            tail = text[places[-1][1] :]  # the end of the answer's turn (its end-of-turn token)
            spans = [(start - len(lead), end + len(tail)) for start, end in places]
            framed = all(
                start >= len(lead)
                and text[start - len(lead) : start] == lead
                and text[end : end + len(tail)] == tail
                for start, end in places[:-1]
            )
            if framed and places[-1][0] >= len(last_prompt):
                return text, spans, last_prompt
        text, spans = self.spans_by_prefixes(turns, name)
        return text, spans, last_prompt

    def _render_with_spans(self, record: ConversationRecord) -> tuple[str, list[tuple[int, int]], str]:
        """(full text, answer character spans, prompt text for generation before the last answer)."""
        if self.chat_template is None:
            if len(record.turns) != 2 or record.image is None:
                raise DataError(
                    f"{record.name}: template `plain` takes one image and one caption "
                    "(a human turn and a gpt turn); use template `chat` for multi-turn or text-only data"
                )
            # LLaVA's released pretraining code: the human turn is replaced by the image alone.
            prompt = self.image_token
            text = prompt + record.turns[1][1] + PLAIN_SEPARATOR
            return text, [(len(prompt), len(text))], prompt
        return self.answer_spans(self.placed(record.turns), record.name)

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
        text, spans, last_prompt = self._render_with_spans(record)
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
        offsets = np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)  # (L, 2)
        token_starts, token_ends = offsets[:, 0], offsets[:, 1]
        real = token_starts != token_ends  # special tokens added by the post-processor are empty
        bounds = np.asarray([self._shift(text, b) for span in spans for b in span], dtype=np.int64)  # (2A,)
        # boundaries strictly inside a token: (start, end) holds bounds[i] iff start < bounds[i] < end
        crossing = np.searchsorted(bounds, token_ends, "left") - np.searchsorted(
            bounds, token_starts, "right"
        )
        straddling = np.flatnonzero(real & (crossing > 0))
        if straddling.size:
            token = self.tokenizer.convert_ids_to_tokens(input_ids[int(straddling[0])])
            raise TemplateMismatchError(
                f"{record.name}: token {token!r} straddles an answer boundary: the tokenizer merges the "
                "template's text with the answer. Use a template whose role markers end on a token boundary "
                "(vicuna_v1)."
            )
        interval = np.searchsorted(bounds, token_starts, "right")  # 2k+1: inside answer k
        inside = real & (interval % 2 == 1)
        per_answer = np.bincount(interval[inside] // 2, minlength=len(spans))
        last = np.flatnonzero(inside & (interval == 2 * len(spans) - 1))
        prompt_ids = self._encode(last_prompt)["input_ids"]
        if (per_answer == 0).any() or not last.size or input_ids[: int(last[0])] != prompt_ids:
            raise TemplateMismatchError(
                f"{record.name}: the generation prompt tokenizes differently from the same text inside "
                "the training sequence, so inference would not match training. Check that the "
                "tokenizer and the chat template belong together."
            )
        ids = np.asarray(input_ids, dtype=np.int64)  # (L,)
        return self._truncate(record, ids, np.where(inside, ids, IGNORE_INDEX))

    def _truncate(
        self, record: ConversationRecord, input_ids: np.ndarray, labels: np.ndarray
    ) -> TokenizedSample:
        truncated = len(input_ids) > self.max_length
        if truncated:
            image_positions = np.flatnonzero(input_ids == self.image_token_id)
            if image_positions.size and image_positions[-1] >= self.max_length:
                raise SampleDropped(
                    "image_tokens_cut",
                    f"{record.name}: {len(input_ids)} tokens; max_length {self.max_length} would cut the image",
                )
            input_ids, labels = input_ids[: self.max_length], labels[: self.max_length]
        if (labels == IGNORE_INDEX).all():
            raise SampleDropped(
                "no_answer_tokens",
                f"{record.name}: no answer token fits within max_length {self.max_length}",
            )
        return TokenizedSample(
            input_ids=input_ids.tolist(), labels=labels.tolist(), image=record.image, truncated=truncated
        )
