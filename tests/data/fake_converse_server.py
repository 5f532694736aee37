"""A fake OpenAI-compatible endpoint on 127.0.0.1 that writes conversations, grounded or invented on purpose.

It is `FakeChatServer` (same script, logging, usage, error statuses and `hold_after`) answering the
conversation prompt: the source text it is sent has one "Label: text" line per field, and its rounds
answer with those texts verbatim (so every number and side is in the source), one round per line, 2 to 6.
Behaviours, per source text (the user message) as scripted, else `default`:
- "grounded": those rounds only;
- "invented_number": one more round whose answer gives a size the source does not ("9.7 cm");
- "wrong_side": one more round naming the side the source does not (左侧 when it says right, else 右侧);
- "all_invented": two rounds, each with an invented number (the conversation is dropped);
- "unparseable": an answer that is not JSON;
and every error behaviour of FakeChatServer ("429", "500", "401", "400", "timeout", "malformed").

Run alone for manual tries (the worked example of docs/conversations_and_review.md):
`python tests/data/fake_converse_server.py [--script script.json] [--default grounded]`.
"""

from __future__ import annotations

import argparse
import json
import threading

try:
    from .fake_openai_server import BEHAVIOURS, FakeChatServer
except ImportError:  # run as a script
    from fake_openai_server import BEHAVIOURS, FakeChatServer

CONVERSE_BEHAVIOURS = ("grounded", "invented_number", "wrong_side", "all_invented", "unparseable")
ERROR_BEHAVIOURS = tuple(b for b in BEHAVIOURS if b not in ("ok", "english", "drop_numbers"))
QUESTIONS = (
    "这张图像显示了什么？",
    "能具体描述一下所见吗？",
    "还有哪些发现？",
    "这与病史有什么关系？",
    "图像提示什么结论？",
    "还需要注意什么？",
)
INVENTED_ROUND = ("病灶有多大？", "病灶直径约 9.7 cm。")


def source_texts(source: str) -> list[str]:
    """The field texts of a conversation prompt's source text ("Label: text" lines)."""
    return [line.split(": ", 1)[1] for line in source.splitlines() if ": " in line]


def grounded_rounds(source: str) -> list[tuple[str, str]]:
    texts = source_texts(source) or [source]
    count = max(2, min(len(texts), len(QUESTIONS)))
    return [(QUESTIONS[index], texts[index % len(texts)]) for index in range(count)]


def wrong_side_round(source: str) -> tuple[str, str]:
    says_right = "右" in source or "right" in source.lower()
    return ("病变在哪一侧？", f"病变位于{'左' if says_right else '右'}侧。")


class FakeConverseServer(FakeChatServer):
    behaviours = CONVERSE_BEHAVIOURS + ERROR_BEHAVIOURS

    def __init__(
        self, script: dict[str, list[str]] | None = None, default: str = "grounded", **options
    ) -> None:
        super().__init__(script, default=default, **options)

    def content(self, behaviour: str, source: str, system: str) -> str:
        if behaviour == "unparseable":
            return "以下是对话：问：这是什么？答：一张图。"
        rounds = grounded_rounds(source)
        if behaviour == "invented_number":
            rounds.append(INVENTED_ROUND)
        elif behaviour == "wrong_side":
            rounds.append(wrong_side_round(source))
        elif behaviour == "all_invented":
            rounds = [INVENTED_ROUND, ("还有别的测量吗？", "另见 42 mm 结节。")]
        return json.dumps([{"question": q, "answer": a} for q, a in rounds], ensure_ascii=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--script", help="JSON file {source text: [behaviour, ...]}")
    parser.add_argument("--default", default="grounded", choices=FakeConverseServer.behaviours)
    args = parser.parse_args()
    script = json.load(open(args.script, encoding="utf-8")) if args.script else None
    with FakeConverseServer(script, default=args.default) as server:
        print(server.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
