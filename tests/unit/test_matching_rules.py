"""Suggesting an action network: scores, who can be asked, the pool's arrays, the shortlist,
the team and its rules, and every explanation in plain English."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from contracts.ambassadors import CoreArea, Kind
from services.networks.matching import (
    CandidateRow,
    Fatigue,
    Ineligible,
    Limits,
    Pool,
    Problem,
    Rules,
    Solution,
    Wanted,
    greedy,
    score,
    shortlist,
    suggest,
    why_not,
)
from services.networks.matching.solver import better, evaluate

TODAY = date(2026, 12, 3)
NOBODY_TIRED: Fatigue = {}


def row(
    rid: str,
    kind: Kind = Kind.CITIZEN,
    *,
    themes: tuple[int, ...] = (),
    core_areas: tuple[CoreArea, ...] = (),
    skills: tuple[str, ...] = (),
    networks_at_once: int | None = None,
    paused_until: date | None = None,
) -> CandidateRow:
    return CandidateRow(rid, kind, themes, core_areas, skills, networks_at_once, paused_until)


def rules(size_min: int = 1, size_max: int = 3, **fields: object) -> Rules:
    return Rules(size_min, size_max, **fields)  # type: ignore[arg-type]


def points(n: int) -> tuple[str, ...]:
    """Skills worth ``10 * n`` points against ``WANT_POINTS``."""
    return tuple(f"p{i}" for i in range(n))


WANT_POINTS = Wanted(skills=points(9))


def totals(pool: Pool, wanted: Wanted, fatigue: Fatigue = NOBODY_TIRED) -> dict[str, int]:
    scores = score(pool, wanted, rules(), fatigue, TODAY)
    return {pool.id_of(s): int(scores.total[s]) for s in range(pool.slots)}


# ---------------------------------------------------------------- scoring


def test_a_candidate_earns_ten_per_wanted_skill_three_per_theme_and_four_per_core_area() -> None:
    pool = Pool.build(
        [row("a", themes=(2, 5, 9), core_areas=(CoreArea.HOUSING,), skills=("mentor", "kok"))]
    )
    wanted = Wanted(skills=("mentor", "kok", "it"), themes=(5, 9), core_areas=(CoreArea.HOUSING,))
    scores = score(pool, wanted, rules(), NOBODY_TIRED, TODAY)
    assert scores.skills_matched.tolist() == [2]
    assert scores.themes_shared.tolist() == [2]
    assert scores.core_areas_shared.tolist() == [1]
    assert scores.total.tolist() == [2 * 10 + 2 * 3 + 4]


def test_active_networks_cost_six_and_recent_invitations_two_each() -> None:
    pool = Pool.build([row("a", skills=("mentor",)), row("b", skills=("mentor",))])
    scores = score(pool, Wanted(skills=("mentor",)), rules(), {"a": (2, 3)}, TODAY)
    assert scores.active_networks.tolist() == [2, 0]
    assert scores.recent_invitations.tolist() == [3, 0]
    assert scores.total.tolist() == [10 - 12 - 6, 10]


def test_required_skills_earn_points_like_the_challenges_own_skills() -> None:
    pool = Pool.build([row("a", skills=("mentor", "kok"))])
    scores = score(pool, Wanted(skills=("mentor",)), rules(required_skills=("kok",)), {}, TODAY)
    assert scores.total.tolist() == [20]


def test_a_skill_nobody_in_the_pool_has_matches_nobody() -> None:
    pool = Pool.build([row("a", skills=("mentor",))])
    scores = score(pool, Wanted(skills=("unheard-of",)), rules(), NOBODY_TIRED, TODAY)
    assert scores.total.tolist() == [0]


def test_the_named_terms_of_a_score_leave_out_the_zero_ones() -> None:
    pool = Pool.build([row("a", themes=(1,), skills=("mentor", "kok"))])
    scores = score(
        pool, Wanted(skills=("mentor", "kok"), themes=(1,)), rules(), {"a": (0, 1)}, TODAY
    )
    assert scores.terms(0) == (("skills", 20), ("themes", 3), ("recent_invitations", -2))


def test_fatigue_for_ids_the_pool_does_not_know_is_ignored() -> None:
    pool = Pool.build([row("a")])
    scores = score(pool, Wanted(), rules(), {"ghost": (5, 5)}, TODAY)
    assert scores.total.tolist() == [0]


# ---------------------------------------------------------------- who can be asked


def reasons(pool: Pool, the_rules: Rules, fatigue: Fatigue = NOBODY_TIRED) -> dict[str, str]:
    scores = score(pool, Wanted(), the_rules, fatigue, TODAY)
    return {pool.id_of(s): Ineligible(int(scores.reason[s])).name for s in range(pool.slots)}


def test_ambassadors_the_request_excludes_cannot_be_asked() -> None:
    pool = Pool.build([row("a"), row("b")])
    assert reasons(pool, rules(exclude=frozenset({"b", "ghost"}))) == {"a": "NO", "b": "EXCLUDED"}


def test_a_pause_that_ends_today_still_holds_and_one_that_ended_yesterday_does_not() -> None:
    pool = Pool.build(
        [
            row("today", paused_until=TODAY),
            row("yesterday", paused_until=TODAY - timedelta(days=1)),
            row("next-week", paused_until=TODAY + timedelta(days=7)),
        ]
    )
    assert reasons(pool, rules()) == {"today": "PAUSED", "yesterday": "NO", "next-week": "PAUSED"}


def test_ambassadors_at_their_own_limit_cannot_be_asked_and_those_below_it_can() -> None:
    pool = Pool.build(
        [row("full", networks_at_once=2), row("room", networks_at_once=3), row("no-limit")]
    )
    fatigue = {"full": (2, 0), "room": (2, 0), "no-limit": (9, 0)}
    assert reasons(pool, rules(), fatigue) == {"full": "AT_LIMIT", "room": "NO", "no-limit": "NO"}


def test_removed_rows_cannot_be_asked_and_removal_is_the_reason_given_first() -> None:
    pool = Pool.build([row("a", paused_until=TODAY, networks_at_once=1), row("b")])
    pool.remove(["a"])
    found = reasons(pool, rules(exclude=frozenset({"a"})), {"a": (1, 0)})
    assert found == {"a": "REMOVED", "b": "NO"}


def test_being_excluded_is_given_before_a_pause_and_a_pause_before_a_full_limit() -> None:
    pool = Pool.build(
        [row("a", paused_until=TODAY, networks_at_once=1), row("b", paused_until=TODAY)]
    )
    pool.upsert([row("c", paused_until=TODAY, networks_at_once=1)])
    found = reasons(pool, rules(exclude=frozenset({"a"})), {"a": (1, 0), "c": (1, 0)})
    assert found == {"a": "EXCLUDED", "b": "PAUSED", "c": "PAUSED"}


# ---------------------------------------------------------------- the pool


def test_upsert_replaces_a_row_with_a_known_id_and_appends_the_others() -> None:
    pool = Pool.build([row("a", skills=("mentor",)), row("b")])
    pool.upsert([row("a", Kind.MUNICIPAL_UNIT, themes=(3,)), row("c")])
    assert len(pool) == 3
    assert pool.slots == 3
    assert pool.index_of("a") == 0
    assert pool.row("a") == row("a", Kind.MUNICIPAL_UNIT, themes=(3,))
    assert pool.kind.tolist() == [6, 0, 0]
    assert pool.themes.tolist() == [0b100, 0, 0]
    assert pool.skills[0].tolist() == [0]


def test_the_arrays_hold_each_field_in_its_agreed_encoding() -> None:
    pool = Pool.build(
        [
            row(
                "a",
                Kind.COMPANY,
                themes=(1, 12),
                core_areas=(CoreArea.HEALTH, CoreArea.HOUSING),
                skills=("x", "y"),
                networks_at_once=2,
                paused_until=date(2027, 1, 1),
            )
        ]
    )
    assert pool.kind.dtype == np.int8 and pool.kind.tolist() == [4]
    assert pool.themes.dtype == np.uint16 and pool.themes.tolist() == [0b1000_0000_0001]
    assert pool.core_areas.dtype == np.uint8 and pool.core_areas.tolist() == [0b101]
    assert pool.skills.dtype == np.uint64 and pool.skills.tolist() == [[0b11]]
    assert pool.skill_index == {"x": 0, "y": 1}
    assert pool.networks_at_once.dtype == np.int16 and pool.networks_at_once.tolist() == [2]
    assert pool.paused_until.dtype == np.int32
    assert pool.paused_until.tolist() == [date(2027, 1, 1).toordinal()]
    assert pool.removed.tolist() == [False]


def test_a_removed_row_is_gone_until_it_is_upserted_again() -> None:
    pool = Pool.build([row("a"), row("b")])
    pool.remove(["a", "ghost"])
    pool.remove(["a"])
    assert len(pool) == 1
    assert pool.row("a") is None
    assert pool.row("ghost") is None
    pool.upsert([row("a", Kind.VOLUNTEER)])
    assert len(pool) == 2
    assert pool.row("a") == row("a", Kind.VOLUNTEER)
    assert pool.slots == 2


def test_within_one_batch_the_last_row_of_an_id_wins() -> None:
    pool = Pool.build([row("a", Kind.CITIZEN), row("a", Kind.POLITICIAN)])
    assert len(pool) == 1
    assert pool.row("a") == row("a", Kind.POLITICIAN)


def test_the_65th_skill_adds_a_word_and_keeps_every_earlier_bit() -> None:
    first = tuple(f"s{i:02d}" for i in range(64))
    pool = Pool.build([row("a", skills=first), row("b", skills=("s63",))])
    assert pool.words == 1
    pool.upsert([row("c", skills=("s64", "s00"))])
    assert pool.words == 2
    assert pool.skill_index["s64"] == 64
    assert pool.skills.tolist() == [[2**64 - 1, 0], [2**63, 0], [1, 1]]
    assert pool.skill_counts()["s63"] == 2
    assert pool.skill_counts()["s64"] == 1


def test_the_capacity_doubles_so_that_adding_one_row_rarely_copies_the_arrays() -> None:
    pool = Pool.build([row(f"a{i:03d}") for i in range(100)])
    assert pool.capacity == 100
    pool.upsert([row("b000")])
    assert pool.capacity == 200
    buffer = pool.kind.base
    for i in range(1, 100):
        pool.upsert([row(f"b{i:03d}")])
    assert pool.capacity == 200
    assert pool.kind.base is buffer
    assert len(pool) == 200


def test_skill_counts_count_only_the_rows_present() -> None:
    pool = Pool.build(
        [row("a", skills=("mentor", "kok")), row("b", skills=("mentor",)), row("c", skills=("it",))]
    )
    pool.remove(["c"])
    assert pool.skill_counts() == {"mentor": 2, "kok": 1, "it": 0}


def test_the_id_order_stays_right_when_ids_arrive_one_at_a_time_or_in_bulk() -> None:
    pool = Pool.build([row("m"), row("c"), row("x")])
    assert pool.id_rank().tolist() == [1, 0, 2]
    pool.upsert([row("a")])
    pool.upsert([row("n"), row("d")])
    pool.upsert([row(f"z{i:03d}") for i in range(100)])  # many at once: sorted again later
    pool.upsert([row("b")])
    ids = [pool.id_of(s) for s in range(pool.slots)]
    expected = sorted(range(len(ids)), key=ids.__getitem__)
    rank = pool.id_rank()
    assert [int(s) for s in np.argsort(rank)] == expected


def test_a_batch_with_a_theme_outside_one_to_twelve_is_refused_and_changes_nothing() -> None:
    pool = Pool.build([row("a", themes=(1,))])
    with pytest.raises(ValueError, match="1 to 12"):
        pool.upsert([row("a", themes=(2,)), row("b", themes=(13,))])
    assert len(pool) == pool.slots == 1
    assert pool.row("a") == row("a", themes=(1,))
    assert pool.themes.tolist() == [0b1]


# ---------------------------------------------------------------- the shortlist


def shortlisted_ids(pool: Pool, the_rules: Rules, wanted: Wanted, **sizes: int) -> list[str]:
    scores = score(pool, wanted, the_rules, NOBODY_TIRED, TODAY)
    return [pool.id_of(int(s)) for s in shortlist(scores, the_rules, **sizes)]


def test_the_shortlist_keeps_the_best_holders_of_a_required_skill_however_low_they_score() -> None:
    strong = [row(f"s{i:03d}", skills=points(5)) for i in range(300)]
    weak = [row("w1", skills=("rare",)), row("w2", skills=("rare", "p0")), row("w3")]
    pool = Pool.build([*strong, *weak])
    the_rules = rules(required_skills=("rare",))
    found = shortlisted_ids(pool, the_rules, WANT_POINTS, per_skill=2, overall=5)
    assert found == ["s000", "s001", "s002", "s003", "s004", "w2", "w1"]


def test_the_shortlist_keeps_the_best_of_each_composition_group() -> None:
    strong = [row(f"s{i:03d}", skills=points(5)) for i in range(50)]
    units = [row(f"u{i}", Kind.MUNICIPAL_UNIT, skills=points(i)) for i in range(4)]
    pool = Pool.build([*strong, *units])
    the_rules = rules(kind_minimums={Kind.MUNICIPAL_UNIT: 1})
    found = shortlisted_ids(pool, the_rules, WANT_POINTS, per_group=2, overall=3)
    assert found == ["s000", "s001", "s002", "u3", "u2"]


def test_a_group_rule_asking_for_more_than_the_group_width_widens_it() -> None:
    units = [row(f"u{i}", Kind.MUNICIPAL_UNIT) for i in range(5)]
    pool = Pool.build([row("a", skills=points(1)), *units])
    the_rules = rules(1, 5, kind_minimums={Kind.MUNICIPAL_UNIT: 4})
    found = shortlisted_ids(pool, the_rules, WANT_POINTS, per_group=2, overall=1)
    assert found == ["a", "u0", "u1", "u2", "u3"]


def test_the_shortlist_is_ordered_by_score_and_equal_scores_are_settled_by_id() -> None:
    pool = Pool.build([row(f"t{i}") for i in (7, 3, 9, 1, 5, 8)] + [row("z", skills=("p0",))])
    found = shortlisted_ids(pool, rules(), WANT_POINTS, overall=4)
    assert found == ["z", "t1", "t3", "t5"]


def test_the_shortlist_holds_nobody_who_cannot_be_asked() -> None:
    pool = Pool.build([row("a", skills=points(3)), row("b", paused_until=TODAY), row("c")])
    the_rules = rules(exclude=frozenset({"a"}), kind_minimums={Kind.CITIZEN: 1})
    assert shortlisted_ids(pool, the_rules, WANT_POINTS) == ["c"]


# ---------------------------------------------------------------- the team


def test_the_team_meets_every_rule_when_a_team_can_even_at_the_cost_of_points() -> None:
    pool = Pool.build(
        [
            *(row(f"s{i}", skills=points(5)) for i in range(5)),
            row("unit", Kind.MUNICIPAL_UNIT),
            row("cook", skills=("kok",)),
        ]
    )
    the_rules = rules(2, 3, required_skills=("kok",), kind_minimums={Kind.MUNICIPAL_UNIT: 1})
    found = suggest(pool, WANT_POINTS, the_rules, NOBODY_TIRED, TODAY)
    assert sorted(found.ids) == ["cook", "s0", "unit"]
    assert found.unmet == () and found.gaps == ()
    assert found.method == "optimal"
    assert found.objective == 50 + 10


def test_the_team_takes_only_members_who_add_points_beyond_the_minimum_size() -> None:
    pool = Pool.build([row("a", skills=points(2)), row("b", skills=points(1)), row("c"), row("d")])
    found = suggest(pool, WANT_POINTS, rules(1, 4), {"c": (1, 0), "d": (0, 1)}, TODAY)
    assert found.ids == ("a", "b")
    assert found.objective == 30


def test_the_team_reaches_the_minimum_size_with_the_least_costly_members() -> None:
    pool = Pool.build([row("a", skills=points(2)), row("c"), row("d")])
    found = suggest(pool, WANT_POINTS, rules(2, 4), {"c": (1, 0), "d": (0, 1)}, TODAY)
    assert found.ids == ("a", "d")
    assert found.objective == 18


def test_a_composition_minimum_nobody_can_meet_says_how_many_can_be_asked() -> None:
    pool = Pool.build(
        [
            row("u1", Kind.MUNICIPAL_UNIT),
            row("u2", Kind.MUNICIPAL_UNIT, paused_until=TODAY),
            row("c1"),
            row("c2"),
        ]
    )
    the_rules = rules(2, 4, kind_minimums={Kind.MUNICIPAL_UNIT: 2})
    found = suggest(pool, Wanted(), the_rules, NOBODY_TIRED, TODAY)
    assert "u1" in found.ids
    assert [(u.rule, u.need, u.have, u.sentence) for u in found.unmet] == [
        ("kind:municipal_unit", 2, 1, "at least 2 municipal_unit: only 1 can be asked")
    ]


def test_a_required_skill_nobody_who_can_be_asked_has_is_named_as_a_gap() -> None:
    pool = Pool.build([row("a", skills=("mentor",)), row("b", skills=("kok",), paused_until=TODAY)])
    the_rules = rules(1, 2, required_skills=("mentor", "kok", "it"))
    found = suggest(pool, Wanted(), the_rules, NOBODY_TIRED, TODAY)
    assert found.ids == ("a",)
    assert [g.sentence for g in found.gaps] == [
        "no active ambassador who can be asked has the skill kok",
        "no active ambassador who can be asked has the skill it",
    ]
    assert [u.sentence for u in found.unmet] == [
        "someone with the skill kok: no active ambassador who can be asked has it",
        "someone with the skill it: no active ambassador who can be asked has it",
    ]


def test_with_fewer_who_can_be_asked_than_the_minimum_size_the_team_is_all_of_them() -> None:
    pool = Pool.build([row("a"), row("b"), row("c", paused_until=TODAY)])
    found = suggest(pool, Wanted(), rules(5, 8), {"b": (3, 0)}, TODAY)
    assert found.ids == ("a", "b")
    assert found.considered == 2
    assert [(u.rule, u.sentence) for u in found.unmet] == [
        ("size", "at least 5 members: only 2 can be asked")
    ]


def test_rules_a_team_of_the_largest_size_cannot_all_meet_are_reported_with_the_reason() -> None:
    pool = Pool.build([row("c", skills=points(1)), row("u", Kind.MUNICIPAL_UNIT)])
    the_rules = rules(1, 1, kind_minimums={Kind.CITIZEN: 1, Kind.MUNICIPAL_UNIT: 1})
    found = suggest(pool, WANT_POINTS, the_rules, NOBODY_TIRED, TODAY)
    assert found.ids == ("c",)
    assert [u.sentence for u in found.unmet] == [
        "at least 1 municipal_unit: the team has 0; no team of at most 1 meets every rule at once"
    ]


def test_an_empty_pool_gives_an_empty_team_and_says_why() -> None:
    found = suggest(Pool(), Wanted(), rules(2, 3, required_skills=("kok",)), {}, TODAY)
    assert found.members == ()
    assert found.considered == found.shortlisted == 0
    assert [u.rule for u in found.unmet] == ["size", "skill:kok"]


# ---------------------------------------------------------------- explanations


def test_each_member_is_explained_by_the_rules_they_serve_and_their_points() -> None:
    pool = Pool.build(
        [
            row(
                "anna",
                themes=(4,),
                core_areas=(CoreArea.HOUSING,),
                skills=("lektiehjaelp", "mentor"),
            )
        ]
    )
    wanted = Wanted(skills=("mentor",), themes=(4, 5), core_areas=(CoreArea.HOUSING,))
    the_rules = rules(
        1,
        2,
        required_skills=("lektiehjaelp", "mentor"),
        kind_minimums={Kind.CITIZEN: 1},
        core_area_minimums={CoreArea.HEALTH: 1},
    )
    found = suggest(pool, wanted, the_rules, {"anna": (1, 1)}, TODAY)
    (anna,) = found.members
    assert anna.id == "anna"
    assert anna.total == 19
    assert anna.terms == (
        ("skills", 20),
        ("themes", 3),
        ("core_areas", 4),
        ("active_networks", -6),
        ("recent_invitations", -2),
    )
    assert anna.covers == ("lektiehjaelp", "mentor")
    assert anna.fills == ("kind:citizen",)
    assert anna.reason == (
        "covers lektiehjaelp, mentor; counts toward at least 1 citizen; "
        "relevance 27 (2 skills, 1 theme, 1 core area); "
        "penalties -8 (1 active network, 1 invitation in the last 90 days)"
    )


def test_a_member_with_nothing_to_show_is_still_explained() -> None:
    pool = Pool.build([row("a", Kind.COMPANY)])
    found = suggest(pool, Wanted(), rules(1, 1), NOBODY_TIRED, TODAY)
    assert found.members[0].reason == "score 0: fills a place in the team"
    assert found.members[0].terms == ()


def test_counts_in_an_explanation_are_plural_when_more_than_one() -> None:
    pool = Pool.build([row("a", Kind.ASSOCIATION, themes=(1, 2), core_areas=tuple(CoreArea))])
    wanted = Wanted(themes=(1, 2), core_areas=tuple(CoreArea))
    the_rules = rules(1, 1, core_area_minimums={CoreArea.HOUSING: 1, CoreArea.HEALTH: 2})
    found = suggest(pool, wanted, the_rules, {"a": (2, 3)}, TODAY)
    assert found.members[0].fills == ("core_area:housing", "core_area:health")
    assert found.members[0].reason == (
        "counts toward at least 1 with core area housing, at least 2 with core area health; "
        "relevance 18 (2 themes, 3 core areas); "
        "penalties -18 (2 active networks, 3 invitations in the last 90 days)"
    )


# ---------------------------------------------------------------- why not


def why(pool: Pool, the_rules: Rules, who: str, wanted: Wanted = WANT_POINTS, **kw: object) -> str:
    fatigue: Fatigue = kw.pop("fatigue", NOBODY_TIRED)  # type: ignore[assignment]
    found = suggest(pool, wanted, the_rules, fatigue, TODAY)
    return why_not(pool, wanted, the_rules, fatigue, TODAY, who, found)


def test_why_not_an_unknown_id_says_nobody_has_it() -> None:
    pool = Pool.build([row("a")])
    assert why(pool, rules(), "ghost") == "ghost is not known: no ambassador has this id"


def test_why_not_a_removed_ambassador_says_they_are_not_active() -> None:
    pool = Pool.build([row("a"), row("b")])
    pool.remove(["b"])
    assert why(pool, rules(), "b") == "b is not an active ambassador"


def test_why_not_a_member_says_they_are_in_the_team() -> None:
    pool = Pool.build([row("a")])
    assert why(pool, rules(), "a") == "a is in the suggested team"


def test_why_not_an_excluded_ambassador_says_the_request_excluded_them() -> None:
    pool = Pool.build([row("a"), row("b")])
    assert why(pool, rules(exclude=frozenset({"b"})), "b") == "b is excluded by the request"


def test_why_not_a_paused_ambassador_gives_the_date_the_pause_ends() -> None:
    pool = Pool.build([row("a"), row("b", paused_until=date(2026, 12, 24))])
    assert why(pool, rules(), "b") == "b is paused until 2026-12-24"


def test_why_not_an_ambassador_at_their_limit_gives_the_count_and_the_limit() -> None:
    pool = Pool.build([row("a"), row("b", networks_at_once=2)])
    found = why(pool, rules(), "b", fatigue={"b": (2, 0)})
    assert found == "b is already in 2 networks, their own limit is 2"


def test_why_not_someone_below_the_shortlist_gives_their_score_and_rank() -> None:
    pool = Pool.build([*(row(f"s{i:03d}", skills=points(2)) for i in range(150)), row("low")])
    assert why(pool, rules(1, 3), "low") == (
        "low was not on the shortlist: their score 0 ranks 151 of 151 who can be asked, "
        "below the best per required skill, per composition rule and overall"
    )


def test_why_not_someone_shortlisted_says_how_much_lower_a_team_with_them_scores() -> None:
    pool = Pool.build(
        [row("a", skills=points(2)), row("b", skills=points(1)), row("c", themes=(1,))]
    )
    wanted = Wanted(skills=points(9), themes=(1,))
    found = why(pool, rules(2, 2), "c", wanted)
    assert found == "the best team with c scores 7 lower (23 instead of 30); c would replace b"


def test_why_not_someone_who_would_break_a_rule_names_the_rule() -> None:
    pool = Pool.build(
        [
            row("cit", skills=points(3)),
            row("unit", Kind.MUNICIPAL_UNIT, skills=points(1)),
            row("firm", Kind.COMPANY, skills=points(2)),
        ]
    )
    the_rules = rules(2, 2, kind_minimums={Kind.CITIZEN: 1, Kind.MUNICIPAL_UNIT: 1})
    assert why(pool, the_rules, "firm") == (
        "with firm in it, no team meets at least 1 municipal_unit"
    )


def test_why_not_someone_as_good_as_a_member_says_the_teams_score_the_same() -> None:
    pool = Pool.build([row("a", skills=points(1)), row("b", skills=points(1))])
    assert why(pool, rules(1, 1), "b") == (
        "a team with b scores the same (10), one of equally good teams; b would replace a"
    )


# ---------------------------------------------------------------- determinism and fallback


def crowd() -> list[CandidateRow]:
    kinds = (Kind.CITIZEN, Kind.CITIZEN, Kind.VOLUNTEER, Kind.MUNICIPAL_UNIT, Kind.ASSOCIATION)
    return [
        row(
            f"amb-{i:03d}",
            kinds[i % len(kinds)],
            themes=(1 + i % 12,),
            core_areas=(tuple(CoreArea)[i % 3],),
            skills=tuple(f"k{j}" for j in range(6) if (i >> j) & 1),
        )
        for i in range(120)
    ]


CROWD_WANTED = Wanted(skills=("k0", "k1"), themes=(1, 2, 3), core_areas=(CoreArea.HEALTH,))
CROWD_RULES = rules(
    4,
    6,
    required_skills=("k4", "k5"),
    kind_minimums={Kind.MUNICIPAL_UNIT: 2, Kind.CITIZEN: 1},
    core_area_minimums={CoreArea.HOUSING: 1},
)


def test_the_same_input_gives_the_same_team_every_time() -> None:
    pool = Pool.build(crowd())
    first = suggest(pool, CROWD_WANTED, CROWD_RULES, NOBODY_TIRED, TODAY)
    second = suggest(pool, CROWD_WANTED, CROWD_RULES, NOBODY_TIRED, TODAY)
    assert first == second
    assert first.method == "optimal" and first.unmet == ()


def test_the_order_the_rows_arrived_in_does_not_change_the_team() -> None:
    rows = crowd()
    forward = Pool.build(rows)
    backward = Pool.build(rows[60:])
    backward.upsert(reversed(rows[:60]))
    first = suggest(forward, CROWD_WANTED, CROWD_RULES, NOBODY_TIRED, TODAY)
    second = suggest(backward, CROWD_WANTED, CROWD_RULES, NOBODY_TIRED, TODAY)
    assert first.members == second.members


def test_with_no_time_to_search_the_greedy_fallback_still_meets_every_rule() -> None:
    pool = Pool.build(crowd())
    found = suggest(
        pool, CROWD_WANTED, CROWD_RULES, NOBODY_TIRED, TODAY, limits=Limits(deterministic_time=0)
    )
    assert found.method == "greedy"
    assert found.unmet == ()
    assert 4 <= len(found.members) <= 6
    best = suggest(pool, CROWD_WANTED, CROWD_RULES, NOBODY_TIRED, TODAY)
    assert found.objective <= best.objective


def problem(
    weights: tuple[int, ...], members: tuple[tuple[int, ...], ...] = (), **kw: int
) -> Problem:
    needs = tuple(kw.pop(f"need{r}", 1) for r in range(len(members)))
    return Problem(
        ids=tuple(f"p{i}" for i in range(len(weights))),
        weights=weights,
        members=members,
        needs=needs,
        size_min=kw.pop("size_min", 1),
        size_max=kw.pop("size_max", 3),
    )


def test_greedy_takes_rule_fillers_first_then_fills_up_then_adds_only_positive_points() -> None:
    # p3 helps both rules, p1 only one; p4 is the best left; p0 and p2 cost points.
    found = greedy(problem((-5, 1, -1, 0, 7, 2), ((1, 3), (3,)), size_min=3, size_max=5))
    assert found.team == (1, 3, 4, 5)
    assert found.shortfall == (0, 0)
    assert found.method == "greedy"
    assert found.objective == 10


def test_greedy_fills_up_to_the_minimum_size_even_with_members_who_cost_points() -> None:
    found = greedy(problem((-3, -1, -2), size_min=2, size_max=3))
    assert found.team == (1, 2)
    assert found.objective == -3


def test_greedy_breaks_equal_gains_by_id() -> None:
    found = greedy(problem((4, 4, 4), ((0, 1, 2),), size_min=1, size_max=1))
    assert found.team == (0,)


def test_a_feasible_solver_team_gives_way_only_to_a_strictly_better_greedy_team() -> None:
    the_problem = problem((5, 3, 1), ((2,),), size_min=1, size_max=2)
    found = evaluate(the_problem, (0, 1), "feasible")  # 8 points but misses the rule
    fallback = evaluate(the_problem, (0, 2), "greedy")  # 6 points and meets it
    assert better(the_problem, found, fallback) == fallback
    same = Solution(fallback.team, "feasible", fallback.objective, fallback.shortfall)
    assert better(the_problem, same, fallback).method == "feasible"


def test_the_penalty_per_missing_member_outweighs_every_weight_together() -> None:
    assert problem((5, -7, 3)).big_m == 16
