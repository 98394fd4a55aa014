"""The admin shows what a notice said, not the customer's opt-out credential (issue 13: who may touch grid
operations is enforced whichever door is used).

An event notice's body holds the customer's signed opt-out link, and the link is the credential: whoever holds it
opts the customer out, recorded as the customer. The messages' admin showed the body to every role that may read
messages (an auditor, a settlement analyst), so a read-only user could copy the link and opt the customer's device
out of a dispatched event, the trail naming the customer. The admin (change page) now shows the link's place with
the token withheld."""

import re

import pytest
from django.core import mail

from cpm.base import roles
from cpm.notifications.choices import MessageKind
from cpm.notifications.models import Message
from events.choices import ParticipationStatus
from events.models import Participation
from tests.factories.enrollments import staff_user

from .conftest import participant
from .test_opt_out_link import reserved_event, send_notices

pytestmark = pytest.mark.django_db
LINK = re.compile(r"/notices/opt-out/[^/\s\"'<]+/")


@pytest.mark.parametrize("role", [roles.AUDITOR, roles.SETTLEMENT_ANALYST, roles.CSR, roles.PROGRAM_ADMIN])
def test_the_message_admin_does_not_show_the_opt_out_link(client, program, role):
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com")
    reserved_event(program, [ana])
    send_notices()
    sent = LINK.search(mail.outbox[0].body).group(0)  # the customer got the link
    notice = Message.objects.get(kind=MessageKind.EVENT_NOTICE)
    assert sent in notice.body
    client.force_login(staff_user(role))
    page = client.get(f"/admin/notifications/message/{notice.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert LINK.search(html) is None, LINK.search(html).group(0)
    assert "Ana" in html and "opt-out link withheld" in html
    exported = client.post("/admin/notifications/message/", {"action": "export_csv",
                                                              "_selected_action": [notice.pk]})
    assert LINK.search(exported.content.decode()) is None
    assert Participation.objects.get(subscription=ana).status == ParticipationStatus.RESERVED
