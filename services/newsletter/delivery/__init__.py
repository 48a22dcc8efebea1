"""Delivery of outbound mail: every mail is a record before it is sent, never lost nor doubled.

``states`` holds the pure rules, ``store`` the ``mails`` collection, ``batches`` the bulk
batches an issue goes out in, ``erasure`` a person scrubbed from both, ``smtp`` the
connection pool and rate limit, ``worker`` the loop that ties them together.
"""

from services.newsletter.delivery.batches import (
    PlannedBatch,
    batch_id_for,
    ensure_batch_indexes,
    issue_progress,
    queue_batches,
)
from services.newsletter.delivery.erasure import erase_recipient
from services.newsletter.delivery.smtp import RateLimiter, SmtpPool
from services.newsletter.delivery.states import (
    Attachment,
    Cancelled,
    DeliveryFailure,
    MailRecord,
    MailState,
    MaterializedMail,
    NotReady,
    PermanentFailure,
    TransientFailure,
    classify,
    mail_id_for,
    message_id_for,
    new_mail,
)
from services.newsletter.delivery.store import (
    claim_due,
    count_by_state,
    ensure_mail_indexes,
    get_mail,
    mark,
    queue_mail,
    queue_many,
)
from services.newsletter.delivery.worker import (
    DeliveryWorker,
    Materialize,
    RecordsCallback,
    batch_size_for,
)

__all__ = [
    "Attachment",
    "Cancelled",
    "DeliveryFailure",
    "DeliveryWorker",
    "MailRecord",
    "MailState",
    "Materialize",
    "MaterializedMail",
    "NotReady",
    "PermanentFailure",
    "PlannedBatch",
    "RateLimiter",
    "RecordsCallback",
    "SmtpPool",
    "TransientFailure",
    "batch_id_for",
    "batch_size_for",
    "claim_due",
    "classify",
    "count_by_state",
    "ensure_batch_indexes",
    "ensure_mail_indexes",
    "erase_recipient",
    "get_mail",
    "issue_progress",
    "mail_id_for",
    "mark",
    "message_id_for",
    "new_mail",
    "queue_batches",
    "queue_mail",
    "queue_many",
]
