"""Team-draft interleaving (Radlinski, Kurup & Joachims, 2008) for ranking responses.

Instead of showing half the users ranker A and the other half ranker B, every
response merges both rankings: the two "teams" take turns (a coin decides who picks
first in each round) to add their best item not yet shown. A click is credited to
the team that contributed the clicked item. Each user compares the two rankers
side by side on the same request, which removes the between-user variance an A/B
test has to average away: interleaving needs far fewer impressions to find the
better ranker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loopml.core.errors import ValidationError


def team_draft(
    ranking_a: Sequence[int], ranking_b: Sequence[int], rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """Merge two rankings of the same items; return the order and the team (0 or 1) of
    each position.

    >>> order, teams = team_draft([0, 1, 2, 3], [3, 2, 1, 0], np.random.default_rng(0))
    >>> sorted(order), sorted(teams)
    ([0, 1, 2, 3], [0, 0, 1, 1])
    """
    a, b = list(ranking_a), list(ranking_b)
    if sorted(a) != sorted(b):
        raise ValidationError(
            "team_draft: both rankings must order the same items; got "
            f"{sorted(a)[:10]} and {sorted(b)[:10]}",
            field="rankings",
        )
    order: list[int] = []
    teams: list[int] = []
    taken: set[int] = set()
    picks = [0, 0]
    heads = [0, 0]
    rankings = (a, b)
    while len(order) < len(a):
        first = int(rng.random() < 0.5)
        team = 0 if picks[0] < picks[1] else 1 if picks[1] < picks[0] else first
        ranking = rankings[team]
        while ranking[heads[team]] in taken:
            heads[team] += 1
        item = ranking[heads[team]]
        taken.add(item)
        order.append(item)
        teams.append(team)
        picks[team] += 1
    return order, teams


def credit(teams_of_clicked: Sequence[int]) -> int:
    """The winner of one impression from the teams of its clicked items: 0 (A), 1 (B) or
    -1 (a tie, including no click).

    >>> credit([0, 0, 1]), credit([1]), credit([]), credit([0, 1])
    (0, 1, -1, -1)
    """
    a = sum(1 for t in teams_of_clicked if t == 0)
    b = sum(1 for t in teams_of_clicked if t == 1)
    return 0 if a > b else 1 if b > a else -1
