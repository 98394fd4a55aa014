"""Test helpers for events: past events with participations built directly (history for the ledger)."""

import datetime as dt

from events.choices import EventStatus, ParticipationStatus
from events.models import OptOut
from tests.factories.events import EventFactory, ParticipationFactory


def past_event(program, start, *, hours=2, subs=(), status=EventStatus.COMPLETED, opted_out=()):
    """An event of ``program`` at ``start`` (aware) lasting ``hours`` with participations of ``subs``;
    subscriptions in ``opted_out`` opted out at start."""
    event = EventFactory(program=program, start=start, end=start + dt.timedelta(hours=hours),
                         notification_at=start - dt.timedelta(hours=1), status=status)
    for sub in subs:
        opted = sub in opted_out
        p = ParticipationFactory(
            event=event, subscription=sub,
            status=ParticipationStatus.OPTED_OUT if opted else ParticipationStatus.PARTICIPATED,
            opted_out_at=start if opted else None)
        if opted:
            OptOut.objects.create(participation=p, channel="portal", at=start)
    return event


def role_user(role, username=None, **extra):
    """A staff user in the role group ``role`` (``cpm.base.roles``; the groups are created by migration)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username or role.lower().replace(" ", "-"), password="x",
                                                **{"is_staff": True, **extra})
    user.groups.add(Group.objects.get(name=role))
    return user
