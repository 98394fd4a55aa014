"""Loading an interval price set in the admin (issue 17.4): a CSV of ``interval_start,price_per_kwh`` rows for a
program, sent to ``price_set_create`` (use case ``price_set.create``, Cap.MANAGE_PROGRAMS) with
``actor=request.user``. Before, a price set could only be created through the API, so a program whose incentive is
paid on the basis "Interval price set" could not be finished in the admin. Refusals name the line of the file (the
header is line 1)."""

from __future__ import annotations

import csv
import io
import re

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from cpm.base.admin import admin_now
from cpm.base.capabilities import may
from cpm.base.errors import DomainError
from cpm.base.uploads import validate_upload

from . import services
from .models import Program

USE_CASE = "price_set.create"
COLUMNS = ("interval_start", "price_per_kwh")
COLUMNS_HELP = (
    "A CSV file (UTF-8, header row first) with the columns interval_start and price_per_kwh, one row per interval: "
    "interval_start is the interval's start as local wall-clock time in the program's time zone (2026-07-15 16:00), "
    "or with an offset (2026-07-15T16:00-07:00) to name the second 01:00 hour of the autumn DST night; "
    "price_per_kwh is dollars per kWh (0.45), zero or more. Each start is aligned to the interval length on the "
    "local clock and appears once.")


class PriceSetUploadForm(forms.Form):
    program = forms.ModelChoiceField(queryset=Program.objects.order_by("name"))
    name = forms.CharField(max_length=100, help_text="E.g. Summer 2026 peak prices; unique within the program.")
    interval_minutes = forms.TypedChoiceField(label="Interval length", coerce=int,
                                              choices=[(m, f"{m} minutes") for m in (5, 15, 30, 60)], initial=60)
    file = forms.FileField(help_text=COLUMNS_HELP)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["program"].label_from_instance = lambda p: f"{p.name} ({p.time_zone})"

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            validate_upload(upload, kinds=("csv",))
        except DjangoValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc
        text = upload.read().decode("utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""))
        rows, self.row_lines, header, before = [], [], None, 0
        try:
            for values in reader:
                start, before = before + 1, reader.line_num  # a quoted value may span lines: the row starts here
                if not values or values == [""]:
                    continue
                if header is None:
                    header = [h.strip() for h in values]
                    if sorted(header) != sorted(COLUMNS):
                        raise forms.ValidationError(f"The file needs the columns {', '.join(COLUMNS)} "
                                                    f"(found: {', '.join(h for h in header if h) or 'none'}).")
                    continue
                if len(values) != len(header):
                    raise forms.ValidationError(
                        f"Line {start}: {len(values)} value{'s' if len(values) != 1 else ''} for {len(header)} "
                        f"columns ({', '.join(header)}).")
                rows.append({name: value.strip() for name, value in zip(header, values, strict=True)})
                self.row_lines.append(start)
        except csv.Error as exc:
            raise forms.ValidationError(f"Line {reader.line_num}: not CSV ({exc}).") from exc
        if header is None:
            raise forms.ValidationError(f"The file needs the columns {', '.join(COLUMNS)} (found: none).")
        return rows


def _in_lines(message: str, lines: list[int]) -> str:
    """The service numbers rows from 1 ("Row 3: ..."); in a file they are the lines each row starts on (the header
    is line 1; blank lines and values spanning lines move later rows down)."""
    def line(match) -> str:
        row = int(match.group(1))
        return f"Line {lines[row - 1] if 0 < row <= len(lines) else row + 1}:"

    return re.sub(r"^Row (\d+):", line, message)


def upload_view(modeladmin, request):
    if not may(request.user, USE_CASE):
        raise PermissionDenied
    form = PriceSetUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        v = form.cleaned_data
        try:
            price_set = services.price_set_create(program=v["program"], name=v["name"],
                                                  interval_minutes=v["interval_minutes"], rows=v["file"],
                                                  now=admin_now(), actor=request.user)
        except DomainError as exc:
            errors = getattr(exc, "errors", None)
            if isinstance(errors, dict) and errors:
                for key, messages_ in errors.items():
                    field = key if key in ("name", "interval_minutes") else "file"
                    for message in messages_:
                        form.add_error(field, _in_lines(str(message), form.row_lines))
            else:
                form.add_error(None, exc.message)
        else:
            modeladmin.message_user(request, f"Price set “{price_set.name}” of {price_set.program.name}: "
                                             f"{price_set.prices.count()} intervals loaded.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:programs_intervalpriceset_change", args=[price_set.pk]))
    context = {**modeladmin.admin_site.each_context(request), "title": "Load an interval price set", "form": form,
               "opts": modeladmin.model._meta}
    return TemplateResponse(request, "admin/programs/price_set_upload.html", context)
