"""Title normalization of fingerprint version 2: what varies between reports of one defect is
folded, what tells two defects apart is kept."""

import pytest

from db.rules.fingerprint import bug_fingerprint, normalize_title


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Price 3 overlaps  the BUY button", "price 12 overlaps the buy button"),
        ("3 images lack alt text", "12 images lack alt text"),
        ("Page took 1200ms to load", "Page took 85ms to load"),
        ("Order 123456 not found", "Order 998877 not found"),
        ("Request 5f0c1e2d3a4b5c6d failed", "Request 0a1b2c3d4e5f6a7b failed"),
        (
            "Session 1b4e28ba-2fa1-11d2-883f-0016d3cca427 expired",
            "Session 6fa459ea-ee8a-3ca4-894e-db77e160355e expired",
        ),
    ],
)
def test_what_varies_between_reports_of_one_defect_is_folded(one: str, other: str) -> None:
    assert normalize_title(one) == normalize_title(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("HTTP 404 on a link", "HTTP 500 on a link"),
        ("Broken link returns 404", "Broken link returns 500"),
        ("Error 1045 at login", "Error 2002 at login"),
        ("h1 is missing", "h2 is missing"),
        ("Status code 3 from the API", "Status code 4 from the API"),
    ],
)
def test_numbers_that_carry_meaning_are_kept(one: str, other: str) -> None:
    assert normalize_title(one) != normalize_title(other)


def test_the_version_is_part_of_the_fingerprint_and_the_scope_decides_what_is_one_bug() -> None:
    site = [
        bug_fingerprint("ui_ux", "Logo blurry", f"https://s.example/{p}", None)
        for p in ("a", "b/c")
    ]
    template = [
        bug_fingerprint("ui_ux", "Logo blurry", f"https://s.example/p/{n}", None, "template")
        for n in (1, 2)
    ]
    page = [
        bug_fingerprint("ui_ux", "Logo blurry", f"https://s.example/p/{n}", None, "page")
        for n in (1, 2)
    ]
    keyed = bug_fingerprint("ui_ux", "Anything", "https://s.example/x", "logo", "page")

    assert site[0].value == site[1].value and site[0].version == 2
    assert template[0].value == template[1].value != site[0].value
    assert page[0].value != page[1].value
    assert (keyed.key, keyed.scope) == ("dedup_key", None)
    assert len(site[0].value) == 64  # fits the column (sha-256 in hex)
