"""Admin base classes shared by every app: guarded actions, guarded add/change/delete, the reason page, the audit
trail as each object's history, and large changelists.

The admin is an adapter over the services (``cpm.base.capabilities``):

- an action is declared with ``@guarded_action("event.cancel", description=...)``: it is offered only to users who
  may run that use case, and its body calls the service with ``actor=request.user`` (the service checks again);
- a ModelAdmin of a domain model declares ``write_use_cases = {"add": ..., "change": ..., "delete": ...}``; an
  operation without a use case is not offered (the model is read-only there), and ``save_model`` /
  ``delete_model`` must call the service (``GuardedModelAdmin`` refuses a plain save);
- every object's "History" page shows the one audit trail (``cpm.models.AuditEntry``) for that object.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import model_ngettext
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cpm.models import AuditEntry

from .admintime import LocalTimeAdminMixin, readable_json
from .capabilities import may
from .errors import DomainError
from .masking import changes_for, contact_lookup, contact_lookup_allowed
from .pagination import EstimatedCountPaginator


def admin_now() -> dt.datetime:
    """The admin's ``now`` for services (the only place the admin reads the clock)."""
    return dt.datetime.now(dt.UTC)


class LargeTableMixin:
    """Changelists of tables that grow with the utility (customers, devices, participations, interval days): one
    count per page, not a second one of the whole table, and the planner's estimate above 10,000 rows
    (``cpm.base.pagination``), so a page costs the same at any size."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator


def guarded_action(use_case: str, *, description: str):
    """Declare an admin action as the adapter of the write use case ``use_case`` (a name in ``USE_CASES``).

    The action is listed only for users who may run the use case (``GuardedModelAdmin.get_actions``); the test of
    the registry fails for an action without one.
    """

    def decorate(fn: Callable) -> Callable:
        fn = admin.action(description=description)(fn)
        fn.use_case = use_case
        return fn

    return decorate


def domain_error_text(exc: DomainError) -> str:
    """A refusal as one line: the message, or every field's messages for a validation error."""
    errors = getattr(exc, "errors", None)
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{field}: {' '.join(str(m) for m in msgs)}" for field, msgs in errors.items())
    return exc.message


def apply_errors(form: forms.ModelForm, errors: dict[str, list[str]]) -> None:
    """Put a service's or validator's ``errors`` (field -> messages) on ``form``, each message naming the form's
    fields as the form labels them: the services name them as the API does ("end_date (2026-06-01) must be on or
    after start_date"), a person reads "End date ... Start date" next to the boxes."""
    for field, messages_ in errors.items():
        target = field if field in form.fields else None
        for message in messages_:
            form.add_error(target, labelled(form, message))


def labelled(form: forms.BaseForm, message: str) -> str:
    """``message`` with every machine name of one of ``form``'s fields (a name with an underscore, as a whole
    word: ``enrollment_closes_on``) replaced by the field's label ("Enrollment closes on")."""
    labels = {name: str(field.label) for name, field in form.fields.items() if "_" in name and field.label}
    if not labels:
        return message
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, labels), key=len, reverse=True)) + r")\b")
    return pattern.sub(lambda m: labels[m.group(1)], str(message))


def refusal_text(exc: DomainError) -> str:
    """A refusal as a person reads it after an action: every message of a validation error, each after its field's
    name in words ("Window end: The event ... is outside the event window ..."). ``exc.message`` is only the first
    one, after the field's code ("window_end: ..."): an event breaking two rules showed one, then the next."""
    errors = getattr(exc, "errors", None)
    if not isinstance(errors, dict) or not errors:
        return exc.message
    parts = []
    for field, messages_ in errors.items():
        for message in messages_:
            parts.append(str(message) if field in ("non_field_errors", "__all__")
                         else f"{capfirst(field.replace('_', ' '))}: {message}")
    return " ".join(parts)


def apply_each(modeladmin, request, queryset, fn) -> int:
    """Call ``fn(obj)`` for each selected object; a refused one is reported by name (``refusal_text``) and does not
    stop the others. Returns how many succeeded."""
    done = 0
    for obj in queryset:
        try:
            fn(obj)
            done += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {refusal_text(exc)}", messages.ERROR)
    return done


def run_each(modeladmin, request, queryset, label: str, fn) -> None:
    """``apply_each`` and one success message ``"<label>: <count>."``."""
    done = apply_each(modeladmin, request, queryset, fn)
    if done:
        modeladmin.message_user(request, f"{label}: {done}.", messages.SUCCESS)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, strip=True, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
                             help_text="Recorded with the change in the audit trail.")


def ask_reason(modeladmin, request, queryset, *, action: str, title: str, question: str,
               apply: Callable[[Any, str], Any], done: str) -> TemplateResponse | None:
    """An admin action that asks for a reason first, as Django's delete action asks for a confirmation.

    Called from the changelist, it renders an intermediate page listing the selected objects with a required
    ``reason`` field (at most 500 characters). Posted again from that page (``apply``), it calls
    ``apply(obj, reason)`` for each object (a ``DomainError`` is reported per object) and returns None, so the
    admin redirects to the changelist with ``done`` (a format string with ``{count}``) as success message.
    ``action``: the action's name (the page posts it back)."""
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        reason = form.cleaned_data["reason"]
        count = apply_each(modeladmin, request, queryset, lambda obj: apply(obj, reason))
        if count:
            modeladmin.message_user(request, done.format(count=count), messages.SUCCESS)
        return None
    opts = modeladmin.model._meta
    context = {**modeladmin.admin_site.each_context(request), "title": title, "question": question,
               "queryset": queryset, "form": form, "action": action, "opts": opts,
               "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "submit_label": title}
    return TemplateResponse(request, "admin/cpm/reason_confirmation.html", context)


class ContactLookupsMixin:
    """Contact details (e-mail, phone, a message's recipient, those keys of an audit entry's changes) cannot be
    searched or filtered for by users without ``view_personal_data``: the list answering a guess
    (``?email__startswith=pat.j``, ``?recipient__regex=...``, ``?changes__email__startswith=...``) would reveal
    what the page masks, one character at a time. Such a URL filter is refused as Django refuses any disallowed
    lookup (400), and the search ignores contact fields."""

    def lookup_allowed(self, lookup, value, request):
        if not contact_lookup_allowed(request.user, lookup):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_search_fields(self, request):
        fields = super().get_search_fields(request)
        if all(contact_lookup_allowed(request.user, f.lstrip("^=@")) for f in fields):
            return fields
        return tuple(f for f in fields if not contact_lookup(f.lstrip("^=@")))


class GuardedActionsMixin(ContactLookupsMixin):
    """Actions declared with ``guarded_action`` are listed only for users who may run their use case. Every admin
    also has the read-only action "Export selected as CSV" (``cpm.base.csv_export``), offered with view permission:
    a read, so no use case (``read_only = True``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.actions is not None and "export_csv" not in self.actions:
            self.actions = [*self.actions, "export_csv"]

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        from .csv_export import export_csv_response

        return export_csv_response(self, request, queryset)

    export_csv.read_only = True

    def action_checkbox(self, obj):
        """The row's selection checkbox, the same HTML as Django's ``ModelAdmin.action_checkbox`` without rendering a
        form widget's templates for every row (a changelist of 100 rows spent 15-20 ms there)."""
        label = format_html(_("Select this object for an action - {}"), str(obj))
        return format_html('<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
                           helpers.ACTION_CHECKBOX_NAME, str(obj.pk), label)

    def response_action(self, request, queryset, **kwargs):
        """Django's action dispatch, refusing in words (nothing done) a selection holding a value that is not an id
        of this model (a forged or mangled form: ``_selected_action=abc``), which was an HTTP 500."""
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                self.model._meta.pk.to_python(value)
            except ValidationError:
                shown = value.replace("\x00", "\\x00")[:50]
                self.message_user(request, f"The selection holds {shown!r}, which is not an id of "
                                           f"{self.model._meta.verbose_name_plural}: nothing was done.",
                                  messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset, **kwargs)

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        return {name: action for name, action in actions.items()
                if getattr(action.func, "use_case", None) is None or may(request.user, action.func.use_case)}


class AuditHistoryMixin(GuardedActionsMixin):
    """The object's "History" page shows the one audit trail: every audited change of this object (status changes,
    creations, updates, approvals, exports), newest first, with actor, reason, before and after."""

    object_history_template = "admin/cpm/audit_history.html"

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_or_change_permission(request, obj):
            raise DjangoPermissionDenied
        entries = list(AuditEntry.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))
                       .select_related("actor").order_by("-at", "-id")[:500])
        for entry in entries:  # contact details in the changes: masked without the personal-data capability
            entry.changes = changes_for(request.user, entry.changes)
            entry.changes_text = readable_json(entry.changes) if entry.changes else ""  # the page's zone
        opts = self.model._meta
        context = {**self.admin_site.each_context(request), "title": f"Audit trail: {obj}", "subtitle": None,
                   "entries": entries, "module_name": str(opts.verbose_name_plural).capitalize(), "object": obj,
                   "opts": opts, "preserved_filters": self.get_preserved_filters(request), **(extra_context or {})}
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.object_history_template, context)


class AuditHistoryAdmin(LocalTimeAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    """A plain ModelAdmin whose "History" page is the audit trail."""


class GuardedModelAdmin(LocalTimeAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    """A domain model's admin: add, change and delete are offered only where a write use case is declared for them
    (``write_use_cases``) and the user may run it; actions only to users who may run theirs.

    Subclasses that declare ``add`` or ``change`` implement ``save_via_service(request, obj, form, change)`` and
    those that declare ``delete`` implement ``delete_via_service(request, obj)``: the plain ``Model.save`` is never
    called for them.
    """

    write_use_cases: dict[str, str] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.actions is not None and "delete_selected" not in self.actions:
            self.actions = [*self.actions, "delete_selected"]  # ours, in place of the site's (below)

    @admin.action(permissions=["delete"], description=gettext_lazy("Delete selected %(verbose_name_plural)s"))
    def delete_selected(self, request, queryset):
        """Django's "Delete selected" (the same confirmation page), each object through the delete service
        (``delete_queryset``), saying how many were really deleted: Django's counted the selection, so a selection
        the service refused read "Successfully deleted 2 programs." with both still there."""
        if not request.POST.get("post"):
            return django_delete_selected(self, request, queryset)
        _deletable, _counts, perms_needed, protected = self.get_deleted_objects(queryset, request)
        if protected:
            return django_delete_selected(self, request, queryset)  # the page naming what protects them
        if perms_needed:
            raise DjangoPermissionDenied
        done = self.delete_queryset(request, queryset)
        if done:
            self.message_user(request, _("Successfully deleted %(count)d %(items)s.")
                              % {"count": done, "items": model_ngettext(self.opts, done)}, messages.SUCCESS)
        return None

    def _may(self, request, operation: str) -> bool:
        name = self.write_use_cases.get(operation)
        return bool(name) and may(request.user, name)

    def has_add_permission(self, request, *args):
        return self._may(request, "add")

    def has_change_permission(self, request, obj=None):
        return self._may(request, "change")

    def has_delete_permission(self, request, obj=None):
        return self._may(request, "delete")

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or self._may(request, "change")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """A service's refusal while saving (``DomainError``, e.g. "program X is closed") rolls the whole change back
        (the admin saves the object and its inlines in one transaction): nothing is saved. The page comes back with
        what was typed still in the boxes, the refusal at the field it names (labelled as on screen) or above the
        form, and as the page's message."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, domain_error_text(exc), messages.ERROR)
            if request.method != "POST":
                return HttpResponseRedirect(request.get_full_path())
            request.cpm_refusal = exc  # read by ``get_form``: the same POST, bound again, is invalid with it
            try:
                return super().changeform_view(request, object_id, form_url, extra_context)
            except DomainError:  # refused before the form (the object itself): its message, on a fresh page
                return HttpResponseRedirect(request.get_full_path())
            finally:
                del request.cpm_refusal

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        refusal = getattr(request, "cpm_refusal", None)
        if refusal is None:
            return form

        class Refused(form):
            def clean(self):
                data = super().clean()
                errors = getattr(refusal, "errors", None)
                if not (isinstance(errors, dict) and errors):
                    errors = {refusal.field or "__all__": [refusal.message]}
                apply_errors(self, errors)
                return data

        Refused.__name__ = form.__name__
        return Refused

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as exc:
            self.message_user(request, domain_error_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        self.save_via_service(request, obj, form, change)

    def save_via_service(self, request, obj, form, change):  # pragma: no cover - declared by subclasses
        raise NotImplementedError(f"{type(self).__name__} declares a write use case but no service call")

    def delete_model(self, request, obj):
        self.delete_via_service(request, obj)

    def delete_queryset(self, request, queryset) -> int:
        """Each object through ``delete_via_service``; a refused one is reported by name and the others go on. The
        admin log ("Recent actions") records a deletion only for an object really deleted (its entry is written
        in the object's own savepoint). Returns how many were deleted."""

        def delete_one(obj):
            with transaction.atomic():
                self.log_deletions(request, [obj])
                self.delete_via_service(request, obj)

        return apply_each(self, request, queryset, delete_one)

    def delete_via_service(self, request, obj):  # pragma: no cover - declared by subclasses
        raise NotImplementedError(f"{type(self).__name__} declares a delete use case but no service call")


class ReadOnlyAdmin(LocalTimeAdminMixin, AuditHistoryMixin, admin.ModelAdmin):
    """A record written only by services (ledgers, lines, messages, revisions): listed and shown, never edited."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline:
    """An inline of rows written by services: shown, not edited."""

    can_delete = False
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
