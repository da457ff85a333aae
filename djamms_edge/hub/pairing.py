"""Box pairing: a new box shows a short code, staff type it into the console, the box receives its token.

1. The box (no token yet) calls ``POST /api/v1/pairings`` with its device id and gets a code to show
   (on its status page and the TV) and a long polling secret it keeps to itself.
2. Staff of a venue enter the code (``POST /api/v1/venues/{venueId}/pairings``): the pairing is claimed
   for that venue, once, atomically, and the box's token version is re-issued.
3. The box polls ``POST /api/v1/pairings/collect`` with its secret and receives its device token and
   venue, once.

Only hashes are stored: the code's HMAC keyed with the hub's secret (a short code would be easy to
brute-force from a plain hash) and the secret's sha256. Codes live minutes; both steps are rate-limited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from djamms_edge.hub.errors import ApiError

# No 0/O, 1/I/L, U/V lookalikes: a code read off a TV across a bar is typed right the first time.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
CODE_LENGTH = 6  # 29**6 ≈ 6e8; claims need a staff token and are rate-limited per venue


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: str) -> str:
    """``K7PQ4X`` as ``K7P-Q4X``: easier to read aloud."""
    return f"{code[:3]}-{code[3:]}"


def normalize_code(typed: str) -> str:
    """What staff typed (any case, spaces or dashes) as a code, or ApiError(400)."""
    code = "".join(ch for ch in typed.upper() if ch not in " -")
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        raise ApiError(400, f"a pairing code is {CODE_LENGTH} characters as the box shows them, e.g. K7P-Q4X",
                       "code")
    return code


def code_hash(key: str, code: str) -> str:
    return hmac.new(key.encode(), code.encode(), hashlib.sha256).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
