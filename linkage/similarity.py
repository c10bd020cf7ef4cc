"""String similarity functions, computed exactly as DuckDB computes them.

The compiled scorer must put every pair in the same comparison level as Splink's DuckDB
SQL does, so these follow DuckDB's `jaro_winkler_similarity` (Winkler boost above 0.7,
prefix of at most 4, scale 0.1; empty strings score 0) and `damerau_levenshtein`
(unrestricted: an adjacent transposition costs 1 even with edits between). An
integration test checks both against DuckDB on thousands of pairs.
"""

from __future__ import annotations


def jaro_similarity(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    len_a, len_b = len(a), len(b)
    window = max(0, max(len_a, len_b) // 2 - 1)
    matched_b = [False] * len_b
    matches_a: list[str] = []
    for i, char in enumerate(a):
        low, high = max(0, i - window), min(len_b, i + window + 1)
        for j in range(low, high):
            if not matched_b[j] and b[j] == char:
                matched_b[j] = True
                matches_a.append(char)
                break
    common = len(matches_a)
    if common == 0:
        return 0.0
    matches_b = [b[j] for j in range(len_b) if matched_b[j]]
    transpositions = sum(x != y for x, y in zip(matches_a, matches_b, strict=True)) // 2
    return (common / len_a + common / len_b + (common - transpositions) / common) / 3.0


def jaro_winkler_similarity(a: str, b: str) -> float:
    """Jaro-Winkler similarity in [0, 1]."""
    sim = jaro_similarity(a, b)
    if sim <= 0.7:
        return sim
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return sim + prefix * 0.1 * (1.0 - sim)


def within_one_edit(a: str, b: str) -> bool:
    """damerau_levenshtein(a, b) <= 1, without the matrix: equal, or one substitution,
    insertion, deletion or adjacent transposition apart."""
    if a == b:
        return True
    len_a, len_b = len(a), len(b)
    if abs(len_a - len_b) > 1:
        return False
    if len_a == len_b:
        diffs = [i for i in range(len_a) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]])
    short, long_ = (a, b) if len_a < len_b else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


def damerau_levenshtein(a: str, b: str) -> int:
    """Unrestricted Damerau-Levenshtein distance (Lowrance-Wagner)."""
    if a == b:
        return 0
    len_a, len_b = len(a), len(b)
    if not len_a or not len_b:
        return max(len_a, len_b)
    infinity = len_a + len_b
    last_row_of: dict[str, int] = {}
    d = [[0] * (len_b + 2) for _ in range(len_a + 2)]
    d[0][0] = infinity
    for i in range(len_a + 1):
        d[i + 1][0] = infinity
        d[i + 1][1] = i
    for j in range(len_b + 1):
        d[0][j + 1] = infinity
        d[1][j + 1] = j
    for i in range(1, len_a + 1):
        last_match_col = 0
        for j in range(1, len_b + 1):
            k = last_row_of.get(b[j - 1], 0)
            m = last_match_col
            cost = 0 if a[i - 1] == b[j - 1] else 1
            if cost == 0:
                last_match_col = j
            d[i + 1][j + 1] = min(
                d[i][j] + cost,
                d[i + 1][j] + 1,
                d[i][j + 1] + 1,
                d[k][m] + (i - k - 1) + 1 + (j - m - 1),
            )
        last_row_of[a[i - 1]] = i
    return d[len_a + 1][len_b + 1]
