"""What the console answers when it must refuse, as pages rather than problem+json."""

from __future__ import annotations

from broker.errors import BrokerError


class ConsoleError(BrokerError):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignInRequired(ConsoleError):
    """No live session: the browser is sent to the sign-in page, which says why by
    `code` (`required`, `ended` or `key`)."""

    status = 401

    def __init__(self, message: str, code: str = "required") -> None:
        super().__init__(message)
        self.code = code


class ConsoleRefused(ConsoleError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TooLarge(ConsoleError):
    status = 413
