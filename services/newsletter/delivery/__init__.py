"""Delivery of outbound mail: every mail is a record before it is sent, never lost nor doubled.

``states`` holds the pure rules, ``store`` the ``mails`` collection, ``smtp`` the connection
pool and rate limit, ``worker`` the loop that ties them together.
"""

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
    count_issue_mails,
    ensure_mail_indexes,
    erase_recipient,
    get_mail,
    mark,
    queue_mail,
    queue_many,
)
from services.newsletter.delivery.worker import DeliveryWorker, Materialize, RecordsCallback

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
    "RateLimiter",
    "RecordsCallback",
    "SmtpPool",
    "TransientFailure",
    "claim_due",
    "classify",
    "count_by_state",
    "count_issue_mails",
    "ensure_mail_indexes",
    "erase_recipient",
    "get_mail",
    "mail_id_for",
    "mark",
    "message_id_for",
    "new_mail",
    "queue_mail",
    "queue_many",
]
