"""One normal form for identities: emails (who signs in) and artist names (the per-artist limit).

Pure functions, no I/O. Every email is normalised here once, before it is stored, compared or mailed to,
and the stores compare exactly: a database's ``lower()`` (which on PostgreSQL with a UTF-8 locale folds
``İ`` and the Kelvin sign onto ASCII) never decides who someone is.

Email policy:
- the whole address: NFKC (fullwidth and compatibility forms become plain ones);
- the domain: IDNA 2008 with UTS #46 mapping, as the ASCII (``xn--``) form, lower case — ``İcorp.com`` is
  ``xn--icorp-7fd.com``, not ``icorp.com``;
- the local part: ASCII letters lower-cased (every mail provider we meet ignores their case); anything
  else kept as it is (``ß`` is not ``ss`` to a mail server);
- refused: control, format (zero-width, bidi overrides) and whitespace characters, and what does not
  have the form local@domain.
The magic link goes to the normalised address, so whoever can read it owns exactly the identity signed in.

Artist names are folded for counting only (the stored name is what the patron typed): NFKC, format
characters removed, casefold, combining marks removed, a confusables skeleton (Cyrillic and Greek letters
that look Latin), and runs of spaces and punctuation-free separators made one space.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import idna

MAX_EMAIL = 254
_LOCAL = re.compile(r"^[^@\s]{1,64}$")
_DOMAIN_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


class InvalidEmail(ValueError):
    """Not an address we accept; the message says why (safe to show)."""


def normalize_email(raw: str) -> str:
    """The one stored and compared form of an email address (see the module's policy); InvalidEmail."""
    text = unicodedata.normalize("NFKC", raw.strip())
    if not text or len(text) > MAX_EMAIL:
        raise InvalidEmail("must be an email address")
    if any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in text):
        raise InvalidEmail("must not contain spaces, control or invisible characters")
    local, at, domain = text.rpartition("@")
    if not at or not _LOCAL.fullmatch(local) or "@" in local:
        raise InvalidEmail("must be an email address")
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        raise InvalidEmail("the domain is not a valid (internationalised) domain name") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise InvalidEmail("the domain is not a valid (internationalised) domain name")
    address = f"{local.translate(_ASCII_UPPER)}@{ascii_domain}"
    if len(address) > MAX_EMAIL:
        raise InvalidEmail("must be an email address")
    return address


# Letters of other scripts that render like Latin ones: folded onto the Latin letter (after casefold, so
# only lower-case forms). Cyrillic and Greek cover the lookalikes seen in practice; maths alphanumerics and
# fullwidth forms are handled by NFKC before this.
_CONFUSABLES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "һ": "h", "ԛ": "q",
    "ԝ": "w", "ӏ": "l", "ү": "y", "ɡ": "g",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "γ": "y", "ϲ": "c", "ϳ": "j", "ζ": "z", "μ": "u",
    # Latin lookalikes outside a-z
    "ı": "i", "ȷ": "j", "ł": "l", "ø": "o", "đ": "d", "ħ": "h",
    # digits that stand in for letters are left alone: "B52s" and "Bs2s" are different bands
})


def artist_key(artist: str) -> str:
    """The artist as the per-artist limit counts it: lookalike and invisible variants fold onto one key."""
    if artist.isascii():  # every paid request: ASCII has no format characters, marks, compatibility forms or
        return " ".join(artist.lower().split())  # lookalikes, and its casefold is lower(): the same key, 5x sooner
    return _folded(artist)


def _folded(artist: str) -> str:
    text = unicodedata.normalize("NFKC", artist)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")  # zero-width, soft hyphen, bidi
    text = unicodedata.normalize("NFD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))  # accents, stacked marks
    text = unicodedata.normalize("NFKC", text).translate(_CONFUSABLES)
    return " ".join(text.split())


def email_updates(rows: Iterable[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """Re-normalising stored ``(row key, email)`` rows: the ``(row key, normal form)`` updates to make, and
    a problem for each row left as it is (no longer an address we accept, or its normal form is already
    another row's: an operator decides which account is the person's)."""
    pending = list(rows)
    claimed = {email for _, email in pending if _normal_or_none(email) == email}
    updates, problems = [], []
    for key, email in pending:
        normal = _normal_or_none(email)
        if normal is None:
            problems.append(f"{email!r} (row {key}) is not an address the hub accepts any more; left as it is")
        elif normal != email and normal in claimed:
            problems.append(f"{email!r} (row {key}) is {normal!r}, which another row has; left as it is")
        elif normal != email:
            claimed.add(normal)
            updates.append((key, normal))
    return updates, problems


def _normal_or_none(email: str) -> str | None:
    try:
        return normalize_email(email)
    except InvalidEmail:
        return None
