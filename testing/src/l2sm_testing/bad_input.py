"""Hypothesis strategies for what a careless or hostile user, tenant or remote charm sends.

The property suites draw from these to prove the promise at every boundary: a clear error
naming the field, and nothing changed.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

# Text the usual mistakes are made of: whitespace and newlines around good values, control
# characters, unicode look-alikes, path and shell syntax, and very long values.
_TRICKY = st.sampled_from(
    [
        "",
        " ",
        "\n",
        "\t",
        "\x00",
        "/",
        "..",
        "$(id)",
        ";",
        ",",
        "=",
        "\u0430",  # Cyrillic a
        "\u200b",  # zero-width space
        "x" * 10_000,
    ]
)


def tricky_text(good: list[str] | None = None) -> st.SearchStrategy[str]:
    """Arbitrary short text, tricky fragments, and good values spoiled at either end."""
    base = st.one_of(st.text(max_size=40), _TRICKY)
    if not good:
        return base
    spoiled = st.tuples(st.sampled_from(good), _TRICKY, st.booleans()).map(
        lambda t: t[0] + t[1] if t[2] else t[1] + t[0]
    )
    return st.one_of(base, spoiled.filter(lambda v: v not in good))


def json_values(max_leaves: int = 8) -> st.SearchStrategy[object]:
    """Any JSON value, nested a little."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tricky_text()
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=max_leaves,
    )


def not_json() -> st.SearchStrategy[str]:
    """Databag values json.loads refuses."""

    def refused(text: str) -> bool:
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            return True
        return False

    return st.one_of(
        st.sampled_from(["{", "[1,", "yes", "l2sm-controller.svc", "'x'", "[" * 3000]),
        st.text(min_size=1, max_size=30).filter(refused),
    )


def databag_value() -> st.SearchStrategy[str]:
    """A raw databag value: not JSON at all, or JSON of any type."""
    return st.one_of(not_json(), json_values().map(json.dumps))


def loose_booleans() -> st.SearchStrategy[object]:
    return st.sampled_from(["yes", "no", "1", "0", 1, 0, "", "on", "True ", None, [], {}])
