"""The tiny preset's tokenizer, built offline from text the package ships.

A LLaMA-style BPE (`▁` word boundaries, byte fallback so no input is ever unknown) trained on
`resources/tiny_tokenizer_corpus.txt` (bilingual medical sentences, the chat system line, ASCII),
`resources/tiny_tokenizer_chars.txt` (the 4,000 most frequent Chinese characters, ranked by summed word
frequency in jieba's dictionary) and the paper's prompt pools. Training is deterministic, so the same
package version always yields the same vocabulary.
"""

from __future__ import annotations

import json
from importlib import resources

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
SPECIAL_TOKENS = [UNK, BOS, EOS, PAD]
BYTE_TOKENS = [f"<0x{value:02X}>" for value in range(256)]
TINY_MERGED_VOCAB_SIZE = 6000  # characters plus a few thousand merges: small, but words stay short


def shipped_training_text() -> list[str]:
    """Every line of packaged text the tiny tokenizer is trained on."""
    package = resources.files("qilin_med_vl.resources")
    lines = package.joinpath("tiny_tokenizer_corpus.txt").read_text(encoding="utf-8").splitlines()
    lines += package.joinpath("tiny_tokenizer_chars.txt").read_text(encoding="utf-8").splitlines()
    pools = json.loads(package.joinpath("prompt_templates.json").read_text(encoding="utf-8"))
    for pool in ("alignment", "instruction"):
        for template in pools[pool]:
            lines += [template["zh"], template["en"]]
    # The image placeholder becomes a special token later; BPE must not learn it as text.
    lines = [line.replace("<image>", " ") for line in lines]
    return [line for line in lines if line.strip()]


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # LLaMA-like: spaces become "▁", digits stand alone; punctuation is isolated so that Chinese
    # merges stay within clauses.
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )


def _byte_fallback_bpe(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True))
    tokenizer.pre_tokenizer = _pre_tokenizer()
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS]
    )
    bos_id = vocab[BOS]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return tokenizer


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Train the tiny BPE on the shipped text and wrap it as a transformers tokenizer (BOS added)."""
    lines = shipped_training_text()
    alphabet = sorted({char for line in lines for char in line if not char.isspace()})
    draft = Tokenizer(models.BPE(unk_token=UNK))
    draft.pre_tokenizer = _pre_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_MERGED_VOCAB_SIZE,
        special_tokens=[],
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet) + 1,
        show_progress=False,
    )
    draft.train_from_iterator(lines, trainer=trainer)
    trained = json.loads(draft.to_str())["model"]
    learned = sorted(trained["vocab"].items(), key=lambda item: item[1])
    # Special tokens first, then the 256 byte pieces (LLaMA's layout), then what BPE learned.
    ordered = SPECIAL_TOKENS + BYTE_TOKENS + [token for token, _ in learned if token not in SPECIAL_TOKENS]
    vocab = {token: index for index, token in enumerate(ordered)}
    merges = [tuple(pair) if isinstance(pair, list) else tuple(pair.split(" ")) for pair in trained["merges"]]
    return PreTrainedTokenizerFast(
        tokenizer_object=_byte_fallback_bpe(vocab, merges),
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=2048,
    )
