"""One normal form for identities (issue 13, item 2): emails and artist names, as pure tables."""

from __future__ import annotations

import pytest

from djamms_edge.hub.identity import InvalidEmail, _folded, artist_key, email_updates, normalize_email
from djamms_edge.hub.store.renormalise import plan


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("boss@icorp.com", "boss@icorp.com"),
        (" Boss@ICorp.COM ", "boss@icorp.com"),  # ASCII case and surrounding space do not make a new person
        ("boss@İcorp.com", "boss@xn--icorp-7fd.com"),  # a dotted capital I is another domain, not icorp.com
        ("boss@\u0130CORP.com", "boss@xn--icorp-7fd.com"),
        ("\u212aate@icorp.com", "kate@icorp.com"),  # Kelvin sign: the link goes to kate@, the real mailbox
        ("boss@\u212acorp.com", "boss@kcorp.com"),  # IDNA maps it the same way: the same domain
        ("ｂｏｓｓ＠ｉｃｏｒｐ．ｃｏｍ", "boss@icorp.com"),  # fullwidth
        ("boss@bücher.de", "boss@xn--bcher-kva.de"),
        ("boss@xn--bcher-kva.de", "boss@xn--bcher-kva.de"),
        ("Straße@example.com", "straße@example.com"),  # only ASCII letters fold: ß is not ss to a mail server
        ("ÉLODIE@example.com", "Élodie@example.com"),
        ("a.b+tag@sub.example.org", "a.b+tag@sub.example.org"),
    ],
)
def test_emails_have_one_normal_form(raw: str, normal: str) -> None:
    assert normalize_email(raw) == normal
    assert normalize_email(normal) == normal  # idempotent: what is stored normalises to itself


@pytest.mark.parametrize(
    "raw",
    [
        "", "boss", "@icorp.com", "boss@", "boss@icorp", "boss@@icorp.com", "bo ss@icorp.com",
        "boss\u200b@icorp.com",  # zero-width space
        "\u202eboss@icorp.com",  # right-to-left override
        "boss\x00@icorp.com", "boss@icorp..com", "boss@-icorp.com", "boss@ic_orp.com",
        "a" * 65 + "@icorp.com", "boss@" + "a" * 250 + ".com",
    ],
)
def test_what_is_not_an_address_is_refused(raw: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(raw)


ABBA = "abba"


@pytest.mark.parametrize(
    "lookalike",
    [
        "ABBA", " abba ", "A\u200bBBA",  # zero-width space
        "AB\u00adBA",  # soft hyphen
        "\u202eABBA", "AB\u200dBA", "\ufeffABBA",  # RTL override, zero-width joiner, BOM
        "ÀBBÀ", "A\u0301B\u0308BA",  # precomposed and combining accents
        "ＡＢＢＡ",  # fullwidth
        "АВВА", "аbbа",  # Cyrillic capitals A and VE (and Latin mixed with Cyrillic)
        "\U0001d400\U0001d401\U0001d401\U0001d400",  # mathematical bold
        "ΑΒΒΑ",  # Greek capitals
    ],
)
def test_artist_lookalikes_fold_onto_one_key(lookalike: str) -> None:
    assert artist_key(lookalike) == ABBA


def test_ascii_artists_get_the_key_of_the_full_folding() -> None:
    """artist_key's shortcut for ASCII names gives exactly what the Unicode folding gives."""
    names = [f"Ab{chr(c)}C d" for c in range(128)] + ["  The\tBand\n", "AC/DC", "B52s", "\x1fX\x0bY\x00"]
    assert [artist_key(n) for n in names] == [_folded(n) for n in names]


@pytest.mark.parametrize(("a", "b"), [("ABBA", "ABBY"), ("B52s", "Bs2s"), ("Sigur Rós", "Sigur Ras")])
def test_different_artists_stay_different(a: str, b: str) -> None:
    assert artist_key(a) != artist_key(b)


def test_stored_emails_are_renormalised_without_merging_people() -> None:
    updates, problems = email_updates([
        ("u1", "Boss@ICORP.com"),  # becomes boss@icorp.com
        ("u2", "ｂoss@icorp.com"),  # would also be boss@icorp.com: left for an operator
        ("u3", "kate@icorp.com"),  # already normal
        ("u4", "not an address"),
    ])
    assert updates == [("u1", "boss@icorp.com")]
    assert len(problems) == 2 and "u2" in problems[0] and "u4" in problems[1]


def test_stored_artist_keys_and_ban_marks_are_refolded() -> None:
    todo = plan(
        users=[], links=[("h1", "Kate@ICorp.com"), ("h2", "garbage")],
        requests=[("r1", "АВВА", "авва"), ("r2", "ABBA", "abba")],
        marks=[("m1", "v1", "ABBA", "abba"), ("m2", "v1", "A\u200bBBA", "a\u200bbba"), ("m3", "v2", "АВВА", "авва")],
    )
    assert todo.links == [("h1", "kate@icorp.com")]
    assert todo.requests == [("r1", "abba")]
    assert todo.drop_marks == ["m2"]  # v1 banned the same artist twice; one mark is enough
    assert todo.marks == [("m3", "abba")]
