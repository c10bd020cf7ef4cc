"""Reading a server-sent-event stream: lines in, (id, event, data) out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseMessage:
    id: str | None
    event: str
    data: str


class SseParser:
    """Feed lines (without their line ends); a blank line completes a message.
    Comments (`: keep-alive`) are skipped."""

    def __init__(self) -> None:
        self._id: str | None = None
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> SseMessage | None:
        if not line:
            if not self._data:
                self._event = "message"
                return None
            message = SseMessage(self._id, self._event, "\n".join(self._data))
            self._event, self._data = "message", []
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None
