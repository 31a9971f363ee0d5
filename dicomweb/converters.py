"""Path converter for UIDs: accepts any segment so the view can answer 400, not 404.

A malformed UID in the path is a bad request (conformance statement: "the provided
study instance identifier didn't conform the expected UID format" → 400).
"""

from __future__ import annotations


class UIDConverter:
    regex = r"[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
