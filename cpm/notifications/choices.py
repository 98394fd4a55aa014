"""Kinds, channels and statuses of customer messages, with the allowed status transitions."""

from django.db import models


class MessageKind(models.TextChoices):
    EVENT_NOTICE = "event_notice", "Event notice"
    REMINDER = "reminder", "Event reminder"
    CANCELLATION = "cancellation", "Event cancelled"
    OPT_OUT_CONFIRMATION = "opt_out_confirmation", "Opt-out confirmation"
    ENROLLMENT_APPROVED = "enrollment_approved", "Enrollment approved"
    ENROLLMENT_REFUSED = "enrollment_refused", "Enrollment refused"
    ENROLLMENT_ENDED = "enrollment_ended", "Enrollment ended"
    EVENT_SUMMARY = "event_summary", "Post-event summary"
    SEASON_STATEMENT = "season_statement", "Season statement"


#: Kinds a customer needs whatever the weekly cap (they change what happens at home, or answer the customer);
#: the others are dropped (SUPPRESSED, in words) once the week's cap of messages is reached.
ESSENTIAL_KINDS = frozenset({
    MessageKind.EVENT_NOTICE, MessageKind.CANCELLATION, MessageKind.OPT_OUT_CONFIRMATION,
    MessageKind.ENROLLMENT_APPROVED, MessageKind.ENROLLMENT_REFUSED, MessageKind.ENROLLMENT_ENDED,
    MessageKind.SEASON_STATEMENT,
})

#: Kinds about an event the customer takes part in: not sent once the customer's enrollment ended, the account
#: closed, or (notice, reminder) the customer opted out or the participation was released.
EVENT_KINDS = frozenset({MessageKind.EVENT_NOTICE, MessageKind.REMINDER, MessageKind.CANCELLATION,
                         MessageKind.OPT_OUT_CONFIRMATION, MessageKind.EVENT_SUMMARY})


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    SMS = "sms", "SMS"


class ContactChoice(models.TextChoices):
    EMAIL = "email", "E-mail"
    SMS = "sms", "SMS"
    BOTH = "both", "E-mail and SMS"
    NONE = "none", "No messages"


CHANNELS_OF: dict[str, tuple[str, ...]] = {
    ContactChoice.EMAIL: (Channel.EMAIL,),
    ContactChoice.SMS: (Channel.SMS,),
    ContactChoice.BOTH: (Channel.EMAIL, Channel.SMS),
    ContactChoice.NONE: (),
}


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Being handed to the channel"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    BOUNCED = "bounced", "Bounced"
    SUPPRESSED = "suppressed", "Not sent (rule)"


MESSAGE_TRANSITIONS: dict[str, frozenset[str]] = {
    MessageStatus.QUEUED: frozenset({MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.FAILED,
                                     MessageStatus.SUPPRESSED}),
    MessageStatus.SENDING: frozenset({MessageStatus.SENT, MessageStatus.FAILED}),
    MessageStatus.FAILED: frozenset({MessageStatus.QUEUED}),
    MessageStatus.SENT: frozenset({MessageStatus.BOUNCED}),
    MessageStatus.BOUNCED: frozenset(),
    MessageStatus.SUPPRESSED: frozenset(),
}
