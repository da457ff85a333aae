"""JSON on the hub's hot paths through orjson, judged exactly as the standard library judges it.

A heartbeat's body and answer are a few dozen bytes, yet ``json`` spent ~17 µs on them per request here
(decoding bytes, then the parse; then the encoder), orjson ~1 µs: about 8 % of a heartbeat (bench/hub_load.py).
orjson and ``json`` differ where a client could notice, so orjson only takes what both read alike:

- integers past 64 bits: orjson reads them as floats, ``json`` exactly. A body with a run of 19 or more
  digits goes to ``json``;
- what orjson refuses (a lone surrogate, 1e400, a BOM, bad UTF-8...) is read again by ``json``, so the client
  gets exactly the answer it got before (a value, or the same error message).

Answers: orjson's output is JSON as ``json.dumps`` writes it, less the spaces; non-string keys become strings
as there. Wheels for x86_64 and aarch64 Linux.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

import orjson
from aiohttp import web

_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed in JSON")


def loads(raw: str | bytes) -> Any:
    """``json.loads(raw)`` refusing NaN and Infinity (ValueError, RecursionError), at orjson's speed."""
    digits = _LONG_DIGITS_BYTES if isinstance(raw, bytes) else _LONG_DIGITS
    if not digits.search(raw):  # type: ignore[arg-type]  # each pattern gets its own kind of text
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard library's judgement, and its words, below
    return json.loads(raw, parse_constant=_reject_constant)


def dumps(data: Any) -> str:
    """``json.dumps(data)`` less the spaces (the same values when read back), at orjson's speed; what orjson
    refuses (a lone surrogate, an integer past 64 bits) is written by ``json``."""
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(data)


def response(data: Any, status: int = 200) -> web.Response:
    """``web.json_response(data, status=status)``, encoded by orjson."""
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status,
                        content_type="application/json", charset="utf-8")
