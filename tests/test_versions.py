from __future__ import annotations

import pytest

from curator.errors import InputError
from curator.versions import bumped, parse_version, semver_key


@pytest.mark.parametrize(
    ("text", "key"),
    [("1.2.0", (1, 2, 0)), ("v10.0.3", (10, 0, 3)), ("main", None), ("v1.2", None), ("01.2.3", None),
     ("1.2.3-rc1", None), ("a" * 40, None)],
)
def test_semver_key(text: str, key: tuple[int, int, int] | None) -> None:
    assert semver_key(text) == key


def test_versions_sort_numerically_not_as_text() -> None:
    assert sorted(["v1.10.0", "v1.9.0", "v1.2.1"], key=semver_key) == ["v1.2.1", "v1.9.0", "v1.10.0"]


def test_parse_version_names_the_bad_input() -> None:
    with pytest.raises(InputError, match="version 'latest' is not a semantic version"):
        parse_version("latest")


@pytest.mark.parametrize(
    ("previous", "kind", "expected"),
    [
        (None, "minor", "1.0.0"),
        ("1.2.3", "major", "2.0.0"),
        ("1.2.3", "minor", "1.3.0"),
        ("1.2.3", "patch", "1.2.4"),
    ],
)
def test_bumped(previous: str | None, kind: str, expected: str) -> None:
    assert bumped(previous, kind) == expected
