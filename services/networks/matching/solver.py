"""The best team on the shortlist: CP-SAT with soft rules, and a greedy fallback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ortools.sat.python import cp_model

Method = Literal["optimal", "feasible", "greedy"]

DETERMINISTIC_TIME = 0.2
WALL_TIME = 1.0
SEED = 20180


@dataclass(frozen=True)
class Problem:
    """The shortlist as plain numbers; position ``i`` is the i-th shortlisted candidate.

    ``members[r]`` are the positions that count toward rule ``r``, which wants
    ``needs[r]`` of them; ``forced`` positions must be in the team.
    """

    ids: tuple[str, ...]
    weights: tuple[int, ...]
    members: tuple[tuple[int, ...], ...]
    needs: tuple[int, ...]
    size_min: int
    size_max: int
    forced: tuple[int, ...] = ()

    @property
    def big_m(self) -> int:
        """A penalty per missing member larger than any difference in summed weights, so
        any team meeting more of the rules beats every team meeting fewer."""
        return sum(abs(w) for w in self.weights) + 1

    @property
    def lower(self) -> int:
        """The smallest size allowed: everyone there is when fewer than size_min exist."""
        return min(self.size_min, len(self.weights))

    @property
    def upper(self) -> int:
        return max(min(self.size_max, len(self.weights)), len(self.forced))


@dataclass(frozen=True)
class Solution:
    team: tuple[int, ...]  # positions, ascending
    method: Method
    objective: int  # sum of the weights, without the penalties
    shortfall: tuple[int, ...]  # per rule: how many members it still lacks

    @property
    def missing(self) -> int:
        return sum(self.shortfall)


def evaluate(problem: Problem, team: tuple[int, ...], method: Method) -> Solution:
    chosen = set(team)
    shortfall = tuple(
        max(0, need - sum(1 for i in members if i in chosen))
        for members, need in zip(problem.members, problem.needs, strict=True)
    )
    objective = sum(problem.weights[i] for i in team)
    return Solution(tuple(sorted(team)), method, objective, shortfall)


def penalised(problem: Problem, solution: Solution) -> int:
    return solution.objective - problem.big_m * solution.missing


def greedy(problem: Problem) -> Solution:
    """Rules first (weight plus M per rule a person helps fill, ties by id), then fill up
    to the minimum size with the best weights, then add anyone who still adds points."""
    n = len(problem.weights)
    big_m = problem.big_m
    rules_of: list[list[int]] = [[] for _ in range(n)]
    for r, members in enumerate(problem.members):
        for i in members:
            rules_of[i].append(r)
    left = list(problem.needs)
    team: list[int] = []
    taken = [False] * n

    def take(i: int) -> None:
        team.append(i)
        taken[i] = True
        for r in rules_of[i]:
            left[r] -= 1

    for i in sorted(set(problem.forced)):
        take(i)
    while len(team) < problem.upper:
        best: tuple[int, str, int] | None = None
        for i in range(n):
            helps = sum(1 for r in rules_of[i] if left[r] > 0) if not taken[i] else 0
            if helps:
                key = (-(problem.weights[i] + big_m * helps), problem.ids[i], i)
                if best is None or key < best:
                    best = key
        if best is None:
            break
        take(best[2])
    rest = sorted(
        (i for i in range(n) if not taken[i]), key=lambda i: (-problem.weights[i], problem.ids[i])
    )
    for i in rest:
        if len(team) >= problem.upper or (len(team) >= problem.lower and problem.weights[i] <= 0):
            break
        take(i)
    return evaluate(problem, tuple(team), "greedy")


def solve(
    problem: Problem,
    *,
    deterministic_time: float = DETERMINISTIC_TIME,
    wall_time: float = WALL_TIME,
    seed: int = SEED,
) -> Solution:
    """The best team by CP-SAT within a deterministic time limit (of equally good teams,
    the one of the best ranked); greedy when CP-SAT has nothing, or something worse."""
    n = len(problem.weights)
    big_m = problem.big_m
    model = cp_model.CpModel()
    x = [model.new_bool_var(f"x{i}") for i in range(n)]
    size = cp_model.LinearExpr.sum(x)
    model.add(size >= problem.lower)
    model.add(size <= problem.upper)
    slacks = []
    for r, (members, need) in enumerate(zip(problem.members, problem.needs, strict=True)):
        slack = model.new_int_var(0, need, f"s{r}")
        model.add(cp_model.LinearExpr.sum([x[i] for i in members]) + slack >= need)
        slacks.append(slack)
    for i in problem.forced:
        model.add(x[i] == 1)
    # Among equally good teams, the one of the best ranked (the shortlist is ordered by
    # score, then id): scaled so that the order never outweighs a single point.
    scale = n * (n - 1) // 2 + 1
    model.maximize(
        scale * cp_model.LinearExpr.weighted_sum(x, problem.weights)
        - scale * big_m * cp_model.LinearExpr.sum(slacks)
        - cp_model.LinearExpr.weighted_sum(x, list(range(n)))
    )

    solver = cp_model.CpSolver()
    params = solver.parameters
    # One worker and the deterministic limit make the same input give the same team;
    # the wall-clock limit only guards against a machine far slower than expected.
    params.num_workers = 1
    params.random_seed = seed
    params.max_deterministic_time = deterministic_time
    params.max_time_in_seconds = wall_time
    status = solver.solve(model)

    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return greedy(problem)
    team = tuple(i for i in range(n) if solver.boolean_value(x[i]))
    if status == cp_model.OPTIMAL:
        return evaluate(problem, team, "optimal")
    return better(problem, evaluate(problem, team, "feasible"), greedy(problem))


def better(problem: Problem, found: Solution, fallback: Solution) -> Solution:
    """The better of two solutions by the penalised objective; ties go to ``found``."""
    return fallback if penalised(problem, fallback) > penalised(problem, found) else found
