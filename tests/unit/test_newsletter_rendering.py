"""What the newsletter's mails say and show: Danish text, escaped user input, inlined CSS."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from jinja2 import UndefinedError

from services.newsletter.mail import rendering
from services.newsletter.mail.rendering import (
    mail_kinds,
    plain_text,
    render_issue,
    render_mail,
    safe_url,
    sanitise_html,
    section_keys,
)

SCRIPT = "<script>alert(1)</script>"
EXPIRES = datetime(2026, 3, 5, 13, 30, tzinfo=UTC)  # 14.30 in Copenhagen (winter time)


def confirmation_context(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Søren Ærø",
        "confirm_url": "https://samskab.example/confirm/tok-123",
        "token": "tok-123",
        "expires_at": EXPIRES,
        **overrides,
    }


def issue_context(**overrides: Any) -> dict[str, Any]:
    return {
        "title": "Nyhedsbrev, forår 2026",
        "intro": "Kære alle\n\nSå er der nyt fra netværket.",
        "period": {"since": date(2026, 1, 1), "until": date(2026, 3, 31)},
        "items": [
            {
                "title": "Sommerfest i Kirkens Korshær",
                "body_html": "<p>Alle er <strong>velkomne</strong> til grillaften.</p>",
                "link": "https://example.org/fest",
                "image_cid": "item-1@samskab.example",
                "image_url": "https://samskab.example/newsletter/images/item-1.jpg",
                "ambassador_name": "Kirkens Korshær Fredericia",
            }
        ],
        "sections": [
            {
                "key": "new_ambassadors",
                "title": "Nye ambassadører",
                "entries": [
                    {
                        "display_name": "Røde Kors Fredericia",
                        "organisation": "Dansk Røde Kors",
                        "themes": ["Bolig", "Lighed i sundhed"],
                        "description": "Vi hjælper, hvor der er brug for det.",
                    }
                ],
            }
        ],
        **overrides,
    }


def visible_html_has_no_script(html: str) -> bool:
    return "<script" not in html.lower() and "javascript:" not in html.lower()


# -- user text comes out inert ----------------------------------------------------------


def test_a_script_in_the_name_is_escaped_in_html_and_plain_text_in_the_text_part() -> None:
    mail = render_mail("confirmation", confirmation_context(name=f"Bo {SCRIPT}"))

    assert visible_html_has_no_script(mail.html)
    assert "Bo &lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    # text/plain is never interpreted: the name is shown exactly as typed.
    assert f"Hej Bo {SCRIPT}" in mail.text


def test_a_script_in_a_news_item_is_removed_from_both_parts() -> None:
    item = {
        "title": f"Titel {SCRIPT}",
        "body_html": (
            f'<p onclick="steal()">Hej {SCRIPT}<a href="javascript:alert(2)">klik</a>'
            '<img src="x" onerror="alert(3)"></p>'
        ),
    }
    issue = render_issue(issue_context(items=[item]))
    mail = issue.personalise("https://samskab.example/newsletter/unsubscribe/u1")

    for html in (mail.html, issue.archive.html):
        assert visible_html_has_no_script(html)
        assert "onclick" not in html and "onerror" not in html and '<img src="x"' not in html
        assert "Titel &lt;script&gt;" in html
    assert "alert(1)" not in mail.text.replace(f"Titel {SCRIPT}", "")
    assert "alert(2)" not in mail.text and "steal" not in mail.text


def test_a_script_in_a_section_entry_is_escaped() -> None:
    entry = {"display_name": f"Forening {SCRIPT}", "description": f"Om os {SCRIPT}"}
    section = {"key": "new_ambassadors", "title": "Nye ambassadører", "entries": [entry]}
    issue = render_issue(issue_context(sections=[section]))
    mail = issue.personalise("https://samskab.example/newsletter/unsubscribe/u1")

    assert visible_html_has_no_script(mail.html)
    assert "Forening &lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert f"* Forening {SCRIPT}" in mail.text


def test_sanitising_keeps_the_small_allow_list_and_makes_links_safe() -> None:
    dirty = (
        '<h1>Stor</h1><p style="color:red">Tekst med <b>fed</b>, <em>kursiv</em><br>'
        '<a href="https://example.org" target="_blank">et link</a>, '
        '<a href="mailto:info@example.org">mail</a>, <a href="/relativ">relativ</a>, '
        '<a href="data:text/html,x">data</a></p><ul><li>en</li></ul><iframe src="x"></iframe>'
    )
    clean = sanitise_html(dirty)

    assert "<h1>" not in clean and "Stor" in clean
    assert "style=" not in clean and "target=" not in clean and "<iframe" not in clean
    assert '<a href="https://example.org" rel="noopener noreferrer">et link</a>' in clean
    assert 'href="mailto:info@example.org"' in clean
    assert "/relativ" not in clean and "data:" not in clean
    assert "<b>fed</b>" in clean and "<em>kursiv</em>" in clean and "<li>en</li>" in clean


def test_a_body_without_markup_keeps_its_paragraphs_and_escapes_its_brackets() -> None:
    clean = sanitise_html("Første linje\nanden linje\n\nNyt afsnit: 5 < 6 & 7 > 3")

    assert clean == (
        "<p>Første linje<br>\nanden linje</p>\n<p>Nyt afsnit: 5 &lt; 6 &amp; 7 &gt; 3</p>"
    )


def test_the_text_version_of_a_body_reads_naturally() -> None:
    html = (
        "<p>Kom og vær med!</p><ol><li>Mad</li><li>Musik</li></ol>"
        '<p>Læs <a href="https://example.org/x">programmet</a> eller skriv til '
        '<a href="mailto:a@example.org">a@example.org</a>.</p>'
    )

    assert plain_text(html) == (
        "Kom og vær med!\n\n1. Mad\n2. Musik\n\n"
        "Læs programmet (https://example.org/x) eller skriv til a@example.org."
    )


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,x", "  ", "ftp://x/y", "https://x/a b", None],
)
def test_only_web_addresses_pass_as_links(url: str | None) -> None:
    assert safe_url(url) is None


def test_an_item_link_that_is_not_a_web_address_is_left_out() -> None:
    item = {"title": "T", "body_html": "x", "link": "javascript:alert(1)"}
    mail = render_issue(issue_context(items=[item])).personalise(None)

    assert "Læs mere" not in mail.html and "Læs mere" not in mail.text


# -- how the mails look -----------------------------------------------------------------


def test_css_is_inlined_into_the_elements() -> None:
    mail = render_mail(
        "welcome", {"name": "Åse", "certificate_number": "FRC-1", "verify_url": "https://v"}
    )

    assert re.search(r'<h1 style="[^"]*color: #16324f', mail.html)
    assert re.search(r'<p style="[^"]*margin', mail.html)
    assert re.search(r'<td class="content" [^>]*style="[^"]*padding', mail.html)
    # Only the @media rule may stay in a <style> element; nothing else is left to inline.
    styles = re.findall(r"<style>(.*?)</style>", mail.html, flags=re.S)
    assert len(styles) == 1 and styles[0].strip().startswith("@media")
    assert "<link" not in mail.html and "<script" not in mail.html
    assert 'width="600"' in mail.html and "max-width: 600px" in mail.html


def test_the_confirmation_shows_the_link_no_command_line_and_copenhagen_time() -> None:
    mail = render_mail("confirmation", confirmation_context())

    assert mail.subject == "Bekræft din tilmelding som ambassadør"
    for part in (mail.html, mail.text):
        assert "https://samskab.example/confirm/tok-123" in part
        assert "samskab ambassadors" not in part and "kommandolinjen" not in part
        assert "5. marts 2026 kl. 14.30" in part
        assert "Søren Ærø" in part
    assert "se bort fra denne mail" in mail.text


@pytest.mark.parametrize(
    "expires_at",
    [
        datetime(2026, 7, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 7, 1, 10, 0),
        "2026-07-01T10:00:00+00:00",
    ],
)
def test_expiry_is_summer_time_aware_and_accepts_what_mongodb_returns(expires_at: Any) -> None:
    mail = render_mail("subscribe_confirmation", confirmation_context(expires_at=expires_at))

    assert "1. juli 2026 kl. 12.00" in mail.text


def test_subscribe_confirmation_works_without_a_name() -> None:
    mail = render_mail("subscribe_confirmation", confirmation_context(name=None))

    assert mail.text.startswith("Hej\n")
    assert "samskab newsletter" not in mail.text + mail.html
    assert mail.subject == "Bekræft, at du vil have nyhedsbrevet"


def test_welcome_mentions_the_certificate_and_the_newsletter_and_links_unsubscribe() -> None:
    mail = render_mail(
        "welcome",
        {
            "name": "Åse",
            "certificate_number": "FRC-2026-000123",
            "verify_url": "https://samskab.example/verify/ABC",
            "unsubscribe_url": "https://samskab.example/newsletter/unsubscribe/u1?a=1&b=2",
        },
    )

    for part in (mail.html, mail.text):
        assert "ambassadørbevis" in part and "FRC-2026-000123" in part
        assert "nyhedsbrev" in part
    assert 'href="https://samskab.example/newsletter/unsubscribe/u1?a=1&amp;b=2"' in mail.html
    assert "https://samskab.example/newsletter/unsubscribe/u1?a=1&b=2" in mail.text


def test_without_an_unsubscribe_url_the_footer_has_no_unsubscribe_line() -> None:
    mail = render_mail("goodbye", {"name": "Åse"})

    assert "afmelde" not in mail.html and "afmelde" not in mail.text
    assert "Afsendt af Ambassadørnetværket" in mail.text
    assert "\n-- \n" in mail.text  # the signature separator mail clients recognise
    assert "velkommen tilbage" in mail.text


def test_a_missing_context_value_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(UndefinedError):
        render_mail("welcome", {"name": "Åse"})


def test_the_known_kinds_are_found_by_their_templates() -> None:
    assert mail_kinds() == {
        "confirmation",
        "subscribe_confirmation",
        "welcome",
        "goodbye",
        "already_ambassador",
        "already_subscribed",
        "meeting_invitation",
        "meeting_updated",
        "meeting_cancelled",
        "meeting_waitlisted",
        "meeting_promoted",
        "meeting_reminder",
        "network_invitation",
        "network_notice",
        "network_alert",
        "story_reviewed",
        "social_notice",
    }


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown mail kind"):
        render_mail("invitation", {})
    with pytest.raises(ValueError, match="render_issue"):
        render_mail("issue", issue_context())


def test_a_subject_stays_on_one_line() -> None:
    issue = render_issue(issue_context(title="Nyt\r\nBcc: eve@example.org"))

    assert issue.subject == "Nyt Bcc: eve@example.org"


# -- the digest: rendered once, personalised per subscriber -----------------------------


def test_personalising_changes_the_unsubscribe_link_and_nothing_else() -> None:
    issue = render_issue(issue_context())
    url_a = "https://samskab.example/newsletter/unsubscribe/aaa"
    url_b = "https://samskab.example/newsletter/unsubscribe/bbb?x=1&y=2"
    a, b = issue.personalise(url_a), issue.personalise(url_b)

    assert a.html.count(url_a) == 1 and a.text.count(url_a) == 1
    assert b.html.count("bbb?x=1&amp;y=2") == 1 and b.text.count(url_b) == 1
    assert a.subject == b.subject
    assert a.html.replace(url_a, "URL") == b.html.replace(url_b.replace("&", "&amp;"), "URL")
    assert a.text.replace(url_a, "URL") == b.text.replace(url_b, "URL")
    assert issue.marker not in a.html + a.text + b.html + b.text


def test_the_digest_shows_items_and_sections_in_both_parts() -> None:
    mail = render_issue(issue_context()).personalise("https://samskab.example/u/1")

    for part in (mail.html, mail.text):
        assert "Sommerfest i Kirkens Korshær" in part
        assert "Fra Kirkens Korshær Fredericia" in part
        assert "Nye ambassadører" in part and "Røde Kors Fredericia" in part
        assert "Lighed i sundhed" in part
        assert "1. januar 2026 til 31. marts 2026" in part
    assert 'src="cid:item-1@samskab.example"' in mail.html
    assert "<strong>velkomne</strong>" in mail.html
    assert "Alle er velkomne til grillaften." in mail.text


def test_the_archive_version_has_no_personal_parts_and_shows_images_by_url() -> None:
    issue = render_issue(issue_context())
    archive = issue.archive

    assert issue.marker not in archive.html + archive.text
    assert "unsubscribe" not in archive.html + archive.text
    assert "afmeld" not in (archive.html + archive.text).lower()
    assert "cid:" not in archive.html
    assert 'src="https://samskab.example/newsletter/images/item-1.jpg"' in archive.html
    assert "Udgivet af" in archive.text and "Du får nyhedsbrevet" not in archive.text


def test_the_archive_may_refer_to_images_next_to_it_but_a_mail_may_not() -> None:
    item = {"title": "T", "body_html": "x", "image_url": "images/item-1.jpg"}
    issue = render_issue(issue_context(items=[item]))

    assert 'src="images/item-1.jpg"' in issue.archive.html
    assert "<img" not in issue.personalise(None).html


def test_without_an_unsubscribe_url_the_mail_version_has_no_link_but_keeps_its_images() -> None:
    issue = render_issue(issue_context())
    mail = issue.personalise(None)

    assert issue.marker not in mail.html + mail.text
    assert "afmelde" not in mail.html and 'src="cid:item-1@samskab.example"' in mail.html


def test_user_text_cannot_plant_the_unsubscribe_placeholder() -> None:
    # Even a placeholder copied from an earlier render stays plain text: each render
    # uses a fresh one.
    earlier = render_issue(issue_context()).marker
    item = {"title": earlier, "body_html": f"<p>{earlier}</p>", "link": f"https://x/{earlier}"}
    issue = render_issue(issue_context(items=[item]))
    mail = issue.personalise("https://samskab.example/u/1")

    assert issue.marker != earlier
    assert mail.text.count(earlier) == 3 and mail.text.count("https://samskab.example/u/1") == 1
    assert mail.html.count("https://samskab.example/u/1") == 1


def test_a_placeholder_collision_is_refused_rather_than_personalised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rendering, "_new_marker", lambda what="unsubscribe": f"samskab{what}fixed")
    item = {"title": "samskabunsubscribefixed", "body_html": ""}

    with pytest.raises(ValueError, match="exactly once"):
        render_issue(issue_context(items=[item]))


def test_an_ambassadors_copy_carries_their_own_stories_link_and_others_the_public_page() -> None:
    issue = render_issue({**issue_context(), "public_url": "https://samskab.example"})
    own = "https://samskab.example/historier/egne/tok.en"
    mine = issue.personalise("https://samskab.example/u/1", own)
    theirs = issue.personalise("https://samskab.example/u/2")
    assert own in mine.text and f'href="{own}"' in mine.html
    assert "https://samskab.example/historier\n" in theirs.text and own not in theirs.html
    assert issue.stories_marker not in mine.html + mine.text + theirs.html + theirs.text
    assert "https://samskab.example/historier" in issue.archive.text


def test_personalising_refuses_a_link_that_is_not_a_web_address() -> None:
    issue = render_issue(issue_context())

    with pytest.raises(ValueError):
        issue.personalise("javascript:alert(1)")


def test_sections_are_pluggable_by_template_and_empty_ones_are_left_out() -> None:
    assert "new_ambassadors" in section_keys()
    empty = {"key": "new_ambassadors", "title": "Nye ambassadører", "entries": []}
    mail = render_issue(issue_context(sections=[empty])).personalise(None)
    assert "Nye ambassadører" not in mail.html

    unknown = {"key": "meetings_upcoming", "title": "Møder", "entries": [{"x": 1}]}
    with pytest.raises(ValueError, match="meetings_upcoming"):
        render_issue(issue_context(sections=[unknown]))


def test_an_issue_with_only_the_required_fields_renders() -> None:
    minimal = {"title": "Nyt", "period": {"since": "2026-01-01", "until": "2026-03-31"}}
    mail = render_issue(minimal).personalise("https://samskab.example/u/1")

    assert "1. januar 2026 til 31. marts 2026" in mail.text


def test_the_welcome_mail_promises_the_newsletter_only_to_subscribers() -> None:
    context = {
        "name": "Anna",
        "certificate_number": "FRC-2026-000001",
        "verify_url": "https://samskab.example/verify/K7QM-2XHD",
    }
    subscribed = render_mail("welcome", {**context, "receives_newsletter": True})
    opted_out = render_mail("welcome", {**context, "receives_newsletter": False})
    assert "Du får fremover også vores nyhedsbrev" in subscribed.text
    assert "Du får fremover også vores nyhedsbrev" not in opted_out.text
    assert "frameldt vores nyhedsbrev" in opted_out.text
    assert "frameldt vores nyhedsbrev" in opted_out.html
