"""The delivery state machine and the SMTP reply classification, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiosmtplib
import pytest

from services.newsletter.delivery.states import (
    NOT_READY_DELAY,
    NOT_READY_LIMIT,
    Attachment,
    DeliveryFailure,
    MailRecord,
    MailState,
    PermanentFailure,
    TransientFailure,
    apply,
    cancelled,
    claim,
    classify,
    delivered,
    mail_id_for,
    new_mail,
    not_ready,
    permanent_failure,
    release,
    retry_delay,
    scrub,
    transient_failure,
)

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=120)
BACKOFF = [30.0, 120.0, 600.0]
ADDRESS = "Hanne.Jensen@example.org"


def queued(**overrides: object) -> MailRecord:
    record = new_mail(
        kind="welcome",
        dedupe_key="welcome:evt-1",
        to_address=ADDRESS,
        to_name="Hanne Jensen",
        subscriber_id="sub-1",
        ambassador_id="amb-1",
        context={"first_name": "Hanne"},
        attachments=[
            Attachment(
                bucket="certificates",
                object_name="FRC-2026-000123.pdf",
                filename="ambassadoerbevis-FRC-2026-000123.pdf",
                content_type="application/pdf",
            )
        ],
        message_id_domain="samskab.example",
        now=NOW,
    )
    return record.model_copy(update=overrides) if overrides else record


def claimed(record: MailRecord | None = None, now: datetime = NOW) -> MailRecord:
    return apply(record or queued(), claim("worker-a", now, LEASE))


# ---------------------------------------------------------------- the record


def test_new_mail_is_queued_due_now_with_a_stable_message_id() -> None:
    record = queued()
    assert record.state is MailState.QUEUED
    assert record.attempts == 0
    assert record.next_attempt_at == NOW == record.created_at
    assert record.message_id == f"<{record.id}@samskab.example>"
    assert len(record.id) == 32
    other = new_mail(
        kind="welcome", dedupe_key="k", to_address="a@b.example", message_id_domain="d"
    )
    assert other.id != record.id


def test_the_mail_id_follows_from_the_dedupe_key() -> None:
    # A re-run fan-out makes the same ids, so the unique _id does the dedupe key's job.
    again = new_mail(
        kind="welcome",
        dedupe_key="welcome:evt-1",
        to_address="x@example.org",
        message_id_domain="samskab.example",
    )
    assert again.id == queued().id == mail_id_for("welcome:evt-1")
    assert again.message_id == queued().message_id
    with pytest.raises(ValueError, match="new_mail"):
        queued().model_copy(update={"id": "0" * 32}).to_document()


def test_bulk_kinds_go_after_transactional_mail() -> None:
    assert queued().priority == 0
    issue = new_mail(
        kind="issue", dedupe_key="issue:1:s", to_address="a@b.c", message_id_domain="d"
    )
    assert issue.priority == 1


def test_document_round_trip_stores_the_id_as_underscore_id() -> None:
    record = queued()
    doc = record.to_document()
    assert doc["_id"] == record.id and "id" not in doc
    assert doc["state"] == "queued"
    assert doc["attachments"][0]["object_name"] == "FRC-2026-000123.pdf"
    assert doc["refs"] == ["subscriber:sub-1", "ambassador:amb-1"]
    assert set(doc) >= {
        "message_id",
        "dedupe_key",
        "kind",
        "to_address",
        "to_name",
        "subscriber_id",
        "ambassador_id",
        "issue_id",
        "context",
        "attachments",
        "state",
        "attempts",
        "next_attempt_at",
        "claimed_by",
        "claimed_until",
        "last_error",
        "created_at",
        "sent_at",
    }
    assert MailRecord.from_document(doc) == record
    # A field a later release adds does not break an older reader.
    assert MailRecord.from_document(doc | {"future": 1}) == record


# ---------------------------------------------------------------- transitions


def test_claim_takes_a_lease_and_counts_an_attempt() -> None:
    update = claim("worker-a", NOW, LEASE)
    assert update["$inc"] == {"attempts": 1}
    record = apply(queued(), update)
    assert record.state is MailState.SENDING
    assert (record.claimed_by, record.claimed_until) == ("worker-a", NOW + LEASE)
    assert record.attempts == 1


def test_delivered_is_final_and_releases_the_claim() -> None:
    later = NOW + timedelta(seconds=2)
    record = apply(claimed(), delivered(claimed(), later))
    assert record.state is MailState.SENT
    assert (record.sent_at, record.finished_at) == (later, later)
    assert (record.claimed_by, record.claimed_until) == (None, None)
    assert record.attempts == 1


def test_transient_failure_requeues_after_the_backoff() -> None:
    error = TransientFailure("451 4.7.1 try again later", 451)
    record = claimed()
    after = apply(record, transient_failure(record, error, NOW, max_attempts=5, backoff=BACKOFF))
    assert after.state is MailState.QUEUED
    assert after.next_attempt_at == NOW + timedelta(seconds=30)
    assert (after.last_code, after.last_error) == (451, "451 4.7.1 try again later")
    assert after.claimed_by is None and after.attempts == 1


def test_backoff_sequence_repeats_its_last_delay_then_fails_after_max_attempts() -> None:
    error = TransientFailure("421 busy", 421)
    record = queued()
    delays: list[float] = []
    now = NOW
    for _ in range(5):
        record = claimed(record, now)
        record = apply(
            record, transient_failure(record, error, now, max_attempts=5, backoff=BACKOFF)
        )
        if record.state is MailState.QUEUED:
            delays.append((record.next_attempt_at - now).total_seconds())
            now = record.next_attempt_at
    assert delays == [30.0, 120.0, 600.0, 600.0]
    assert record.state is MailState.FAILED
    assert record.attempts == 5
    assert record.finished_at == now


def test_retry_delay_edges() -> None:
    assert [retry_delay(n, BACKOFF) for n in (0, 1, 2, 3, 4, 99)] == [30, 30, 120, 600, 600, 600]
    assert retry_delay(3, []) == 0.0


def test_permanent_failure_is_final_at_once() -> None:
    record = claimed()
    error = PermanentFailure("550 5.1.1 mailbox unavailable", 550)
    after = apply(record, permanent_failure(record, error, NOW))
    assert after.state is MailState.FAILED
    assert (after.last_code, after.finished_at, after.claimed_by) == (550, NOW, None)


def test_not_ready_requeues_shortly_without_using_an_attempt() -> None:
    record = claimed()
    after = apply(record, not_ready(record, "certificate not rendered", NOW))
    assert after.state is MailState.QUEUED
    assert after.attempts == 0
    assert after.next_attempt_at == NOW + NOT_READY_DELAY
    assert after.not_ready_since == NOW
    assert after.last_error == "not ready: certificate not rendered"
    # The 24 h count starts at the first NotReady, not at every one.
    later = NOW + timedelta(hours=3)
    again = claimed(after, later)
    again = apply(again, not_ready(again, "still not", later))
    assert again.not_ready_since == NOW and again.state is MailState.QUEUED


def test_not_ready_for_a_day_fails() -> None:
    record = claimed(queued(not_ready_since=NOW))
    late = NOW + NOT_READY_LIMIT
    after = apply(record, not_ready(record, "no certificate", late))
    assert after.state is MailState.FAILED
    assert after.finished_at == late


def test_cancelled_is_final_and_gives_the_attempt_back() -> None:
    record = claimed()
    after = apply(record, cancelled(record, "unsubscribed", NOW))
    assert after.state is MailState.CANCELLED
    assert (after.attempts, after.last_error, after.finished_at) == (0, "unsubscribed", NOW)


def test_release_hands_a_claimed_mail_back_unchanged() -> None:
    record = claimed()
    after = apply(record, release(record))
    assert after.state is MailState.QUEUED
    assert (after.attempts, after.claimed_by, after.next_attempt_at) == (0, None, NOW)


def test_stored_errors_do_not_keep_the_recipient_address() -> None:
    record = claimed()
    error = PermanentFailure(f"550 5.1.1 <{ADDRESS.lower()}>: Recipient address rejected", 550)
    after = apply(record, permanent_failure(record, error, NOW))
    assert after.last_error is not None
    assert ADDRESS.lower() not in after.last_error and "<recipient>" in after.last_error
    assert scrub("x" * 2000, None) == "x" * 500


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize("code", [421, 450, 451, 452, 454])
def test_4xx_codes_are_transient(code: int) -> None:
    failure = classify(code)
    assert isinstance(failure, TransientFailure) and not failure.permanent
    assert failure.code == code


@pytest.mark.parametrize("code", [550, 551, 552, 553, 554, 556])
def test_5xx_codes_are_permanent(code: int) -> None:
    failure = classify((code, "no"))
    assert isinstance(failure, PermanentFailure) and failure.permanent
    assert failure.code == code and failure.message == f"{code} no"


def test_recipient_and_data_refusals_follow_their_code() -> None:
    refused = aiosmtplib.SMTPRecipientRefused(550, "5.1.1 unknown user", "x@example.org")
    assert classify(refused).permanent
    greylisted = aiosmtplib.SMTPRecipientRefused(451, "4.7.1 greylisted", "x@example.org")
    assert not classify(greylisted).permanent
    assert classify(aiosmtplib.SMTPDataError(554, "5.7.1 rejected as spam")).permanent
    assert not classify(aiosmtplib.SMTPDataError(452, "4.3.1 out of storage")).permanent


def test_all_recipients_refused_is_transient_if_any_refusal_is() -> None:
    hard = aiosmtplib.SMTPRecipientRefused(550, "no", "a@example.org")
    soft = aiosmtplib.SMTPRecipientRefused(450, "later", "b@example.org")
    assert classify(aiosmtplib.SMTPRecipientsRefused([hard])).code == 550
    assert classify(aiosmtplib.SMTPRecipientsRefused([hard])).permanent
    mixed = classify(aiosmtplib.SMTPRecipientsRefused([hard, soft]))
    assert not mixed.permanent and mixed.code == 450


@pytest.mark.parametrize(
    "exc",
    [
        aiosmtplib.SMTPServerDisconnected("gone"),
        aiosmtplib.SMTPConnectError("refused"),
        aiosmtplib.SMTPConnectTimeoutError("slow"),
        aiosmtplib.SMTPReadTimeoutError("slow"),
        aiosmtplib.SMTPTimeoutError("slow"),
        ConnectionResetError(),
        TimeoutError(),
        OSError("network unreachable"),
        RuntimeError("anything else"),
    ],
)
def test_connection_trouble_and_timeouts_are_transient(exc: BaseException) -> None:
    failure = classify(exc)
    assert not failure.permanent and failure.code is None


@pytest.mark.parametrize(
    "exc",
    [
        aiosmtplib.SMTPSenderRefused(553, "sender not allowed", "us@example.org"),
        aiosmtplib.SMTPAuthenticationError(535, "bad credentials"),
        aiosmtplib.SMTPHeloError(501, "bad helo"),
        aiosmtplib.SMTPConnectResponseError(554, "no service"),
    ],
)
def test_our_own_configuration_problems_never_bounce_the_recipient(exc: BaseException) -> None:
    # A 5xx to our sender or our login is the same for every mail: retried, not a bounce.
    assert not classify(exc).permanent


def test_unsendable_addresses_are_permanent() -> None:
    assert classify(aiosmtplib.SMTPNotSupported("SMTPUTF8 not supported")).permanent
    assert classify(ValueError("bad address")).permanent


def test_classify_passes_our_own_failures_through() -> None:
    failure = PermanentFailure("550 x", 550)
    assert classify(failure) is failure
    assert isinstance(failure, DeliveryFailure)
