"""The skill vocabulary's query and staff's merges of two names of one skill."""

from __future__ import annotations

from contracts.errors import ErrorCode, ServiceError
from contracts.networks import (
    ListSkills,
    MergeSkills,
    SkillEntry,
    SkillsMerged,
    SkillsMergedEvent,
    SkillVocabulary,
)
from services.networks import store
from services.networks.challenge_handlers import reader_of
from services.networks.context import Context
from services.networks.skills import SkillReader
from services.runtime.unit_of_work import Reading, UnitOfWork


async def list_skills(ctx: Context, scope: Reading, _: ListSkills) -> SkillVocabulary:
    pool, reader = await ctx.pool.current(scope)
    counts = pool.skill_counts()
    skills = sorted(set(reader.vocabulary) | set(counts))
    return SkillVocabulary(
        items=[
            SkillEntry(
                skill=skill,
                synonyms=reader.synonyms(skill),
                count=counts.get(skill, 0),
                in_vocabulary=skill in reader.vocabulary,
            )
            for skill in skills
        ]
    )


async def merge_skills(ctx: Context, uow: UnitOfWork, cmd: MergeSkills) -> SkillsMerged:
    reader = await reader_of(uow)
    into = reader.read(cmd.into_skill)
    if reader.read(into) == cmd.from_skill or into == cmd.from_skill:
        raise ServiceError(
            ErrorCode.CONFLICT, f"{cmd.into_skill} is read as {cmd.from_skill}: merge the other way"
        )
    await store.save_skill_merge(uow, cmd.from_skill, into)
    # Every tag is read again: the pools of all replicas rebuild at their next look.
    await store.stamp_ambassador_change(uow)
    uow.emit(SkillsMergedEvent(from_skill=cmd.from_skill, into_skill=into))
    merged = SkillReader(merges={**reader.merges, cmd.from_skill: into})
    having = sum(
        1
        for tags in await store.active_skill_tags(uow)
        if any(merged.read(tag) == into for tag in tags)
    )
    return SkillsMerged(from_skill=cmd.from_skill, into_skill=into, ambassadors=having)
