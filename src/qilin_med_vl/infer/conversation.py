"""A multi-turn chat about one picture, as the terminal and the web page hold it.

The picture goes into the first user turn only; later turns are text. Each turn re-renders the whole
conversation, and the Engine's image feature cache makes sure the picture is encoded once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image


@dataclass
class Conversation:
    image: Image.Image | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)  # (question, answer) pairs

    def messages(self, question: str) -> list[dict]:
        """Engine messages for asking `question` next."""
        messages = []
        for number, (asked, answered) in enumerate([*self.turns, (question, None)]):
            content: list[dict] = []
            if number == 0 and self.image is not None:
                content.append({"type": "image", "image": self.image})
            content.append({"type": "text", "text": asked})
            messages.append({"role": "user", "content": content})
            if answered is not None:
                messages.append({"role": "assistant", "content": [{"type": "text", "text": answered}]})
        return messages

    def record(self, question: str, answer: str) -> None:
        self.turns.append((question, answer))

    def reset(self) -> None:
        """Forget the questions and answers, keep the picture."""
        self.turns.clear()
