"""The meter-data upload page of the admin (issue 17.4): a CSV, Green Button or kW-drop file (issue 18.5) sent to
``meter_data_load_submit`` (use case ``meter_data.load``, Cap.LOAD_METER_DATA) with ``actor=request.user``; then the
created load's page, with its counts and row errors. A file the upload check or the service refuses is shown with its
message, on the form."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from cpm.base.admin import admin_now, domain_error_text
from cpm.base.capabilities import may
from cpm.base.errors import DomainError
from cpm.base.uploads import validate_upload

from .models import MeterDataLoad

USE_CASE = "meter_data.load"


class MeterUploadForm(forms.Form):
    file = forms.FileField(help_text="A CSV of interval readings (header row first), a Green Button XML file or a "
                                     "kW-drop file of aggregator-reported performance (EventId, ProgramId, SPId, ...).")
    source = forms.ChoiceField(choices=[(MeterDataLoad.Source.CSV, "CSV"),
                                        (MeterDataLoad.Source.GREEN_BUTTON, "Green Button XML"),
                                        (MeterDataLoad.Source.KW_DROP, "kW-drop file (aggregator / DERMS)")],
                               initial=MeterDataLoad.Source.CSV)
    tz = forms.CharField(label="Time zone", required=False, max_length=64,
                         help_text="IANA zone (e.g. America/Los_Angeles) of CSV times written without an offset.")
    service_point_id = forms.CharField(label="Service point", required=False, max_length=64,
                                       help_text="The service point a Green Button file belongs to (required for it).")
    usage_point = forms.CharField(required=False, max_length=300,
                                  help_text="Green Button: the UsagePoint title or href when the file holds several.")

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            kinds = ("xml",) if data.get("source") == MeterDataLoad.Source.GREEN_BUTTON else ("csv",)
            try:
                validate_upload(upload, kinds=kinds)
            except DjangoValidationError as exc:
                self.add_error("file", exc)
        return data


def upload_view(modeladmin, request):
    if not may(request.user, USE_CASE):
        raise PermissionDenied
    from .loaders import meter_data_load_submit

    form = MeterUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        v = form.cleaned_data
        upload = v["file"]
        on_disk = ({"path": upload.temporary_file_path()} if hasattr(upload, "temporary_file_path")
                   else {"content": upload.read()})
        try:
            load = meter_data_load_submit(source=v["source"], **on_disk, now=admin_now(), file_name=upload.name or "",
                                          tz=v["tz"] or None, service_point_id=v["service_point_id"] or None,
                                          usage_point=v["usage_point"] or None, actor=request.user)
        except DomainError as exc:
            form.add_error(None, domain_error_text(exc))
        else:
            modeladmin.message_user(request, f"Meter data load {load.pk} of {load.file_name} submitted.",
                                    messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:settlement_meterdataload_change", args=[load.pk]))
    context = {**modeladmin.admin_site.each_context(request), "title": "Upload meter data", "form": form,
               "opts": modeladmin.model._meta}
    return TemplateResponse(request, "admin/settlement/meterdata_upload.html", context)
