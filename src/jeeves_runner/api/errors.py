"""Errors a route raises on purpose; the app turns each into `{"error": "<sentence>"}`."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
