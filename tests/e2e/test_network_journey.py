"""A challenge from a dialogue meeting to a suggested team, end to end: the stack as ``make
up`` runs it (the 2022 list of organisations imported), driven by the CLI.

Staff enter two citizens with their skills and availability; a dialogue meeting is held and
closed with an outcome; the outcome is a candidate for a challenge until one is raised from
it; the suggested team of 5-8 covers the challenge's skills and has at least one citizen,
one municipal unit and one association, each member with the reason; someone paused is
explained, not suggested. The skill vocabulary counts what the ambassadors wrote.

One stack for the module, small steps in file order sharing a :class:`Journey`; a step whose
input an earlier step did not provide skips.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from contracts.events import COPENHAGEN
from tests.e2e.conftest import PUBLIC_URL, StackRun
from tests.e2e.mailbox import Mailbox
from tests.e2e.steps import need, poll, schedule_when_known
from tests.support.browser import accessible, chromium, press, screenshot

pytestmark = pytest.mark.e2e

OUTCOME = "Lektiehjælp og mentorer for børn i de almene boligområder"
DEMO_AMBASSADORS = 85
KNOWN_TIMEOUT = 120.0


@dataclass
class Journey:
    citizens: dict[str, str]
    meeting_id: str | None = None
    challenge_id: str | None = None
    team: list[str] | None = None
    network_id: str | None = None
    joined: list[str] | None = None


@pytest.fixture(scope="module")
def journey() -> Journey:
    return Journey(citizens={})


def enter_citizen(stack: StackRun, name: str, email: str, *more: str) -> str:
    entered = stack.cli(
        "ambassadors", "sign-up", "--kind", "citizen", "--name", name, "--email", email,
        "--staff", "--consent", *more, "--json",
    ).ok().json()  # fmt: skip
    ambassador_id: str = entered["ambassador"]["id"]
    return ambassador_id


def suggest(stack: StackRun, challenge_id: str, *more: str) -> dict[str, Any]:
    found: dict[str, Any] = (
        stack.cli("networks", "suggest", challenge_id, *more, "--json").ok().json()
    )
    return found


def test_staff_enter_two_citizens_with_their_skills_and_availability(
    stack: StackRun, journey: Journey
) -> None:
    journey.citizens["mona"] = enter_citizen(
        stack, "Mona Lektiesen", "mona.lektiesen@example.org",
        "--skill", "lektie-hjælp", "--skill", "mentor", "--core-area", "housing",
        "--networks-at-once", "2",
    )  # fmt: skip
    journey.citizens["per"] = enter_citizen(
        stack, "Per Pause", "per.pause@example.org", "--skill", "lektiehjælp",
        "--paused-until", (datetime.now(COPENHAGEN) + timedelta(days=60)).date().isoformat(),
    )  # fmt: skip
    shown = stack.cli("ambassadors", "show", journey.citizens["mona"]).ok().stdout
    assert "networks at once  2" in shown


def test_a_dialogue_meeting_is_held_and_its_outcome_waits_for_a_challenge(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    starts = (datetime.now(COPENHAGEN) + timedelta(days=1)).replace(
        hour=16, minute=0, second=0, microsecond=0
    )
    meeting = schedule_when_known(
        stack, "--kind", "dialogue_meeting", "--title", "Dialogmøde om børn i boligområderne",
        "--starts", starts.strftime("%Y-%m-%dT%H:%M"),
        "--ends", (starts + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "--invite", journey.citizens["mona"], "--json",
    )  # fmt: skip
    journey.meeting_id = meeting["id"]
    stack.travel(starts + timedelta(hours=3))
    minutes = tmp_path / "referat.txt"
    minutes.write_text("Referat\n\nVi talte om lektiehjælp.\n", encoding="utf-8")
    stack.cli(
        "events", "close", meeting["id"], "--minutes", str(minutes), "--outcome", OUTCOME, "--json"
    ).ok()

    def waiting() -> list[dict[str, Any]] | None:
        found = stack.cli("networks", "challenge", "candidates", "--json").ok().json()["items"]
        return [c for c in found if c["meeting"]["meeting_id"] == meeting["id"]] or None

    [candidate] = poll(waiting, timeout=30, what="the outcome as a candidate")
    assert candidate["meeting"]["outcome"] == OUTCOME
    assert OUTCOME in stack.cli("networks", "challenge", "candidates").ok().stdout


def test_a_challenge_raised_from_the_outcome_takes_it_up(stack: StackRun, journey: Journey) -> None:
    meeting_id = need(journey.meeting_id, "the held meeting")
    raised = stack.cli(
        "networks", "challenge", "raise", "--title", "Lektiehjælp i boligområderne",
        "--description", OUTCOME, "--skill", "lektiehjælp", "--skill", "rådgivning",
        "--core-area", "housing", "--theme", "5", "--target-group", "Børn og unge",
        "--from-meeting", meeting_id, "--json",
    ).ok().json()  # fmt: skip
    journey.challenge_id = raised["id"]
    assert raised["from_meeting"]["outcome"] == OUTCOME and raised["status"] == "open"
    left = stack.cli("networks", "challenge", "candidates", "--json").ok().json()["items"]
    assert meeting_id not in {c["meeting"]["meeting_id"] for c in left}
    twice = stack.cli(
        "networks", "challenge", "raise", "--title", "Igen", "--description", "Igen",
        "--from-meeting", meeting_id, "--json",
    )  # fmt: skip
    assert twice.returncode != 0 and twice.json()["error"]["code"] == "conflict"
    listed = stack.cli("networks", "challenge", "list").ok().stdout
    assert "Lektiehjælp i boligområderne" in listed


def test_the_suggested_team_meets_the_rules_and_says_why_each_member(
    stack: StackRun, journey: Journey
) -> None:
    challenge_id = need(journey.challenge_id, "the challenge")
    rules = (
        "--size", "5-8", "--require-kind", "citizen:1", "--require-kind", "municipal_unit:1",
        "--require-kind", "association:1",
    )  # fmt: skip

    def everyone_known() -> dict[str, Any] | None:
        team = suggest(stack, challenge_id, *rules, "--why-not", journey.citizens["per"])
        return team if team["considered"] >= DEMO_AMBASSADORS + 1 else None

    team = poll(everyone_known, timeout=KNOWN_TIMEOUT, interval=1.0, what="the demo list known")
    members = team["members"]
    assert 5 <= len(members) <= 8
    kinds = [m["kind"] for m in members]
    assert {"citizen", "municipal_unit", "association"} <= set(kinds)
    assert team["required_skills"] == ["lektiehjælp", "rådgivning"]
    covered = {skill for m in members for skill in m["covers"]}
    assert covered == {"lektiehjælp", "rådgivning"} and team["gaps"] == [] == team["unmet"]
    ids = {m["ambassador_id"] for m in members}
    assert journey.citizens["mona"] in ids and journey.citizens["per"] not in ids
    assert all(m["reason"] for m in members)
    journey.team = [m["ambassador_id"] for m in members]
    [why] = team["why_not"]
    assert "paused" in why["reason"]
    # The same question gives the same team.
    assert suggest(stack, challenge_id, *rules)["members"] == members
    shown = stack.cli("networks", "suggest", challenge_id, *rules).ok().stdout
    assert "Mona Lektiesen" in shown and "covers lektiehjælp" in shown


def test_a_rule_nobody_can_meet_is_named_with_the_best_team_without_it(
    stack: StackRun, journey: Journey
) -> None:
    challenge_id = need(journey.challenge_id, "the challenge")
    team = suggest(
        stack, challenge_id, "--size", "5-8", "--require-kind", "politician:1",
        "--require-skill", "tryllekunst",
    )  # fmt: skip
    assert any("tryllekunst" in gap for gap in team["gaps"])
    assert any("politician" in rule for rule in team["unmet"])
    assert 5 <= len(team["members"]) <= 8


def test_the_suggested_team_is_formed_and_invited_and_waits_for_answers(
    stack: StackRun, journey: Journey
) -> None:
    challenge_id = need(journey.challenge_id, "the challenge")
    team = need(journey.team, "the suggested team")
    members = [arg for who in team for arg in ("--member", who)]
    formed = stack.cli(
        "networks", "form", challenge_id, *members, "--lead", journey.citizens["mona"],
        "--ends", (datetime.now(COPENHAGEN) + timedelta(days=120)).date().isoformat(),
        "--size", "5-8", "--require-kind", "citizen:1", "--json",
    ).ok().json()  # fmt: skip
    network = formed["network"]
    journey.network_id = network["id"]
    assert (network["status"], network["counts"]["invited"]) == ("forming", len(team))
    assert network["lead"] == journey.citizens["mona"]
    challenge = stack.cli("networks", "challenge", "show", challenge_id, "--json").ok().json()
    assert challenge["status"] == "taken_up"
    shown = stack.cli("networks", "show", network["id"]).ok().stdout
    assert "Mona Lektiesen" in shown and "formed by operator:" in shown
    # Nobody has accepted yet: it cannot start.
    early = stack.cli("networks", "start", network["id"], "--json")
    assert early.returncode != 0 and early.json()["error"]["code"] == "invalid_state"
    listed = stack.cli("networks", "list", "--status", "forming", "--json").ok().json()
    assert [n["id"] for n in listed["items"]] == [network["id"]]


def invitation_link(stack: StackRun, address: str) -> str:
    """The accept link of the network invitation mailed to ``address``."""
    [mail] = Mailbox(stack.data_dir / "mail").wait(
        lambda m: address in m.to and m.subject.startswith("Vil du være med?"),
        count=1,
        timeout=60,
        what=f"the network invitation to {address}",
    )
    found = re.search(rf"{re.escape(PUBLIC_URL)}/netvaerk/svar/\S+/ja", mail.text)
    assert found, mail.text
    return stack.local(found.group(0))


def answer_on_the_page(stack: StackRun, address: str, button: str) -> str:
    with chromium() as browser:
        browser.get(invitation_link(stack, address))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Lektiehjælp i boligområderne"
        accessible(browser)
        press(browser, browser.find_element(By.CSS_SELECTOR, f"button[value={button}]"))
        shown: str = browser.find_element(By.TAG_NAME, "main").text
        screenshot(browser, f"network-answer-{button}")
    return shown


def test_invited_members_answer_on_the_page_their_mail_links_to(
    stack: StackRun, journey: Journey
) -> None:
    network_id = need(journey.network_id, "the network")
    team = need(journey.team, "the team")
    addresses = {
        who: stack.cli("ambassadors", "show", who, "--json").ok().json()["email"] for who in team
    }
    mona = journey.citizens["mona"]
    others = [who for who in team if who != mona]
    yes, no = [mona, others[0]], others[1]
    for who in yes:
        shown = answer_on_the_page(stack, addresses[who], "ja")
        assert "Tak, dit svar er noteret." in shown and "du er med i netværket" in shown
    shown = answer_on_the_page(stack, addresses[no], "nej")
    assert "Du har sagt nej tak." in shown
    # The project leaders are offered a replacement that keeps the composition.
    [offer] = Mailbox(stack.data_dir / "mail").wait(
        lambda m: m.subject == "Et forslag til en afløser: Lektiehjælp i boligområderne",
        count=1,
        timeout=60,
        what="the replacement offered to staff",
    )
    assert f"({no}) har sagt nej tak" in " ".join(offer.text.split())
    assert "samskab networks invite" in offer.text
    detail = stack.cli("networks", "show", network_id, "--json").ok().json()
    states = {m["ambassador_id"]: m["state"] for m in detail["members"]}
    assert [states[w] for w in yes] == ["joined", "joined"] and states[no] == "declined"
    started = stack.cli("networks", "start", network_id, "--json").ok().json()
    assert started["network"]["status"] == "active"
    assert started["network"]["counts"]["joined"] == 2
    journey.joined = yes


def test_a_meeting_for_the_network_reaches_exactly_its_members(
    stack: StackRun, journey: Journey
) -> None:
    network_id = need(journey.network_id, "the started network")
    joined = need(journey.joined, "the members who said yes")
    starts = (datetime.now(COPENHAGEN) + timedelta(days=20)).replace(
        hour=17, minute=0, second=0, microsecond=0
    )
    args = (
        "events", "schedule", "--kind", "network_meeting", "--title", "Første netværksmøde",
        "--starts", starts.strftime("%Y-%m-%dT%H:%M"),
        "--ends", (starts + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "--network", network_id, "--json",
    )  # fmt: skip

    def scheduled() -> dict[str, Any] | None:
        # The events service learns of the network from the networks service's events.
        result = stack.cli(*args)
        if result.returncode != 0 and "no open network" in result.stdout:
            return None
        found: dict[str, Any] = result.ok().json()
        return found

    meeting = poll(scheduled, timeout=30, what="the network known to events")

    def invited() -> list[str] | None:
        detail = stack.cli("events", "show", meeting["id"], "--json").ok().json()
        found = sorted(i["ambassador_id"] for i in detail["invitees"])
        return found if len(found) >= len(joined) else None

    assert poll(invited, timeout=30, what="the members invited") == sorted(joined)
    mailbox = Mailbox(stack.data_dir / "mail")
    mails = mailbox.wait(
        lambda m: "Første netværksmøde" in m.subject, count=len(joined), timeout=60,
        what="the network meeting's invitations",
    )  # fmt: skip
    assert len(mails) == len(joined)


def test_closing_with_an_initiative_counts_toward_the_goal_and_reaches_the_digest(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    network_id = need(journey.network_id, "the started network")
    before = stack.cli("goals", "--json").ok().json()["initiatives"]
    closed = stack.cli(
        "networks", "close", network_id, "--outcome", "initiative",
        "--summary", "Hver tirsdag er der lektiehjælp og en mentor i beboerhuset.",
        "--initiative-title", "Lektiecafé i beboerhuset", "--json",
    ).ok().json()  # fmt: skip
    assert closed["network"]["status"] == "closed"
    goals = stack.cli("goals", "--json").ok().json()["initiatives"]
    # The dialogue meeting held and the network started, both in the goal period.
    assert goals["started"] == before["started"] and goals["networks"] >= 1
    assert goals["meetings"] >= 1 and goals["started"] >= 2
    assert "initiatives" in stack.cli("goals").ok().stdout
    # In public: the result and the organisations, never a person.
    page = httpx.get(f"{stack.website}/netvaerk", timeout=10).text
    assert "Lektiecafé i beboerhuset" in page and "Nyt initiativ" in page
    assert "Mona Lektiesen" not in page

    def drafted() -> dict[str, Any] | None:
        summary: dict[str, Any] = stack.cli("newsletter", "draft", "--json").ok().json()
        return summary if summary["sections"].get("results") else None

    summary = poll(drafted, timeout=30, what="the closed network in the next digest")
    assert summary["sections"]["new_networks"] >= 1
    stack.cli("newsletter", "preview", summary["id"], "--out", str(tmp_path)).ok()
    [text] = [p.read_text(encoding="utf-8") for p in tmp_path.glob("issue-*.txt")]
    assert "Resultater" in text and "Lektiecafé i beboerhuset" in text
    assert "Nye handlingsnetværk" in text and "Lektiehjælp i boligområderne" in text


def test_the_skill_vocabulary_counts_what_ambassadors_wrote(stack: StackRun) -> None:
    vocabulary = stack.cli("networks", "skills", "--json").ok().json()["items"]
    by_skill = {e["skill"]: e for e in vocabulary}
    # "lektie-hjælp" and "lektiehjælp" are one skill.
    assert by_skill["lektiehjælp"]["count"] == 2
    assert by_skill["frivillige"]["count"] >= 7
    listed = stack.cli("networks", "skills").ok().stdout
    assert "lektiehjælp" in listed and "ALSO READ AS" in listed


def test_her_memberships_and_answers_are_in_her_data_and_go_with_her_erasure(
    stack: StackRun, journey: Journey, tmp_path: Path
) -> None:
    mona = need(journey.citizens.get("mona"), "Mona")
    network_id = need(journey.network_id, "the network")
    email = "mona.lektiesen@example.org"
    out = tmp_path / "mona.json"

    stack.cli("privacy", "export", mona, "--out", str(out)).ok()

    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["person"] == {"email": email, "ambassador_id": mona}
    memberships = document["services"]["networks"].get("memberships", [])
    assert network_id in {m.get("network_id") for m in memberships}, memberships
    # The invitations to the network's meeting, and the mails that brought them.
    assert document["services"]["events"], document["services"]["events"]
    assert document["services"]["newsletter"].get("mails"), document["services"]["newsletter"]

    stack.cli("ambassadors", "erase", mona, "--yes").ok()

    def nowhere() -> bool:
        return stack.cli("privacy", "audit", email).returncode == 0

    try:
        poll(nowhere, timeout=30, interval=1.0, what="samskab privacy audit finds nothing")
    except AssertionError:
        pytest.fail(stack.cli("privacy", "audit", email).describe())
