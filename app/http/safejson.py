"""JSON from a user, parsed only once its size and nesting are known to be bounded.

Python's ``json`` module (and the C parser behind it) recurses once per level of nesting, so a
document of a few hundred kilobytes of ``[`` raises ``RecursionError`` (or worse) while decoding.
``json_depth`` counts the nesting without parsing: escape pairs and strings are removed, then the
brackets are summed in fixed-size chunks (memory stays flat whatever the document). ``loads``
refuses a document larger than ``max_bytes`` or deeper than ``max_depth`` before decoding it.
"""
from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

_ESCAPE = re.compile(rb"\\.", re.DOTALL)       # \" \\ \n \u... : the escaped character never counts
_STRING = re.compile(rb'"[^"]*"')                # once escapes are gone, a string has no quote inside
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"[]{}')
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_CHUNK = 1 << 20


class JsonTooDeep(ValueError):
    def __init__(self, depth: int, limit: int):
        super().__init__(f"it nests {depth} levels deep; at most {limit} are accepted")
        self.depth, self.limit = depth, limit


class JsonTooLarge(ValueError):
    def __init__(self, size: int, limit: int):
        super().__init__(f"it is {size} bytes; at most {limit} are accepted")
        self.size, self.limit = size, limit


def json_depth(document: bytes) -> int:
    """How deep arrays and objects nest, counted on the brackets outside strings (an upper bound
    for a document that is not valid JSON, which the parser then refuses anyway)."""
    if b"\\" in document:
        document = _ESCAPE.sub(b"", document)
    structure = document.translate(None, _NOT_STRUCTURE)
    if b'"' in structure:
        structure = _STRING.sub(b"", structure)
    brackets = structure.translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for start in range(0, len(brackets), _CHUNK):
        chunk = np.frombuffer(brackets, np.uint8, count=min(_CHUNK, len(brackets) - start), offset=start)
        running = depth + np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1), dtype=np.int64)
        deepest, depth = max(deepest, int(running.max())), int(running[-1])
    return deepest


def loads(document: bytes, *, max_bytes: int, max_depth: int) -> Any:
    """``json.loads`` of a user's document; ``JsonTooLarge``/``JsonTooDeep`` before decoding, and
    ``ValueError`` (``json.JSONDecodeError``, ``UnicodeDecodeError``) for what is not JSON."""
    if len(document) > max_bytes:
        raise JsonTooLarge(len(document), max_bytes)
    depth = json_depth(document)
    if depth > max_depth:
        raise JsonTooDeep(depth, max_depth)
    return json.loads(document)
