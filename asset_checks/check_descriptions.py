"""The one-line description each check result carries (`AssetCheckResult.description`): what
was found, with its numbers, e.g. "1,989 of 1,989 tracking rows match no broadLog".

Every check builds its line in the function that builds its result, with these helpers, so
numbers read the same everywhere: thousands separated, shares as percentages, names listed
with a cap. Descriptions hold counts, names of files, windows and checks, never a value of
a row.
"""

from collections.abc import Sequence

LISTED = 3  # names written out before "and N more"


def count(n: int | float) -> str:
    """1989 → "1,989"."""
    return f"{n:,}"


def of(part: int, whole: int, noun: str) -> str:
    """ "3 of 1,989 rows"."""
    return f"{count(part)} of {count(whole)} {noun}"


def share(part: int, whole: int) -> str:
    """ "(0.15 %)" of a whole; "(0 %)" of nothing."""
    return f"({part / whole:.2%})" if whole else "(0 %)"


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """ "1 file", "2 files"."""
    return f"{count(n)} {singular if n == 1 else (plural_form or singular + 's')}"


def listing(names: Sequence[str]) -> str:
    """ "a, b, c and 2 more"."""
    shown = ", ".join(str(n) for n in names[:LISTED])
    more = len(names) - LISTED
    return f"{shown} and {more} more" if more > 0 else shown
