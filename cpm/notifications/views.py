"""The public opt-out page of an event notice's link (no login: the signed link is the credential).

GET shows what the link will do (the event, in the program's zone) with one button; POST opts out. The button is
there because mail scanners (Safe Links and the like) open every link of a message: a GET that opted out would opt
customers out of events they never declined. A refused link (tampered, expired, past the program's cut-off, the
event over or cancelled, the customer no longer taking part) gets a page saying why, with HTTP 400/410/409, on GET
as on POST.
"""

from __future__ import annotations

import datetime as dt

from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from cpm.base.capabilities import CustomerActor

from . import services
from .selectors import zone_of

VIA = "opt-out link"
_STATUS = {"invalid": 400, "expired": 410}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@require_http_methods(["GET", "POST"])
def opt_out(request, token: str):
    now = _now()
    try:
        message = services.link_message(token=token, now=now)
    except services.LinkRefused as exc:
        return render(request, "notifications/opt_out.html", {"refused": exc.message, "code": exc.code},
                      status=_STATUS.get(exc.code, 409))
    event, tz = message.event, zone_of(message.program)
    ctx = {"program": message.program, "event": event, "window": services.window_text(event, tz),
           "message": message}
    if request.method == "GET":
        # Told on opening the link when it cannot be used (past the cut-off, the event over or cancelled, no longer
        # taking part), not after pressing the button.
        try:
            state = services.link_state(message=message, now=now)
        except services.LinkRefused as exc:
            return render(request, "notifications/opt_out.html", {**ctx, "refused": exc.message, "code": exc.code},
                          status=_STATUS.get(exc.code, 409))
        return render(request, "notifications/opt_out.html", {**ctx, "already": state == "used",
                                                             "opted_out_before": state == "opted_out"})
    actor = CustomerActor(customer_id=message.customer_id, via=VIA)
    try:
        outcome = services.participation_opt_out_by_link(message=message, now=now, actor=actor)
    except services.LinkRefused as exc:
        return render(request, "notifications/opt_out.html", {**ctx, "refused": exc.message, "code": exc.code},
                      status=_STATUS.get(exc.code, 409))
    return render(request, "notifications/opt_out.html", {
        **ctx, "done": not outcome.already and not outcome.opted_out_before, "already": outcome.already,
        "opted_out_before": outcome.opted_out_before, "confirmation": outcome.confirmation_planned})
