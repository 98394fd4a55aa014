"""Admin for the audit trail (visible, searchable, never editable) and the base of large changelists."""

from django.apps import apps
from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from .base.admin import ContactLookupsMixin, LargeTableMixin
from .base.admintime import LocalTimeAdminMixin
from .base.masking import changes_for
from .models import AuditEntry, Job, JobChunk


@admin.register(AuditEntry)
class AuditEntryAdmin(ContactLookupsMixin, LocalTimeAdminMixin, LargeTableMixin, admin.ModelAdmin):
    list_display = ("at", "actor_label", "code", "object_type", "object_id", "object_repr", "from_status",
                    "to_status")
    # A date filter of fixed choices, not a date hierarchy (which scans every entry on every page).
    list_filter = ("action", "object_type", ("at", admin.DateFieldListFilter))
    search_fields = ("object_id", "object_repr", "actor_label", "reason")
    list_select_related = ("actor",)

    def get_object(self, request, object_id, from_field=None):
        """The entry as this user may see it: contact details in ``changes`` masked without the personal-data
        capability (the instance is only shown: audit entries are never saved from the admin)."""
        entry = super().get_object(request, object_id, from_field)
        if entry is not None:
            entry.changes = changes_for(request.user, entry.changes)
        return entry

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class JobChunkInline(admin.TabularInline):
    model = JobChunk
    extra = 0
    can_delete = False
    fields = ("index", "task_name", "status", "attempts", "updated_at", "last_error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(LocalTimeAdminMixin, admin.ModelAdmin):
    """Background jobs with their progress and errors (read-only: jobs are written by ``cpm.base.jobs``)."""

    list_display = ("id", "kind", "subject_link", "status", "progress", "created_at", "finished_at", "error")
    list_filter = ("status", "kind")
    search_fields = ("subject_repr", "subject_id", "error")
    inlines = [JobChunkInline]
    readonly_fields = ("subject",)

    def get_fields(self, request, obj=None):
        return ["subject", *[f for f in super().get_fields(request, obj) if f != "subject"]]

    @staticmethod
    def _subject_url(obj) -> str | None:
        """The subject's admin page (``subject_type`` is ``app_label.model``; the page checks the user's right)."""
        app_label, _, model_name = obj.subject_type.partition(".")
        if not obj.subject_id or not model_name:
            return None
        try:
            return reverse(f"admin:{app_label}_{model_name}_change", args=[obj.subject_id])
        except NoReverseMatch:
            return None

    @admin.display(description="Subject", ordering="subject_repr")
    def subject_link(self, obj):
        """The subject's name as recorded when the job started, linked to its admin page (no query per row)."""
        url = self._subject_url(obj)
        return format_html('<a href="{}">{}</a>', url, obj.subject_repr) if url else obj.subject_repr or "-"

    @admin.display(description="Subject")
    def subject(self, obj):
        """What the job works on (its event, settlement batch or meter-data load), linked, under its current name;
        what to do about a failed job is done there (reserve again, settle again, retry the load)."""
        try:
            model = apps.get_model(obj.subject_type)
        except (LookupError, ValueError):
            return obj.subject_repr or "-"
        rows = model._default_manager.filter(pk=obj.subject_id)
        if any(f.name == "program" and f.many_to_one for f in model._meta.get_fields()):
            rows = rows.select_related("program")  # an event names its start in its program's zone
        current = rows.first() if obj.subject_id else None
        if current is None:
            return f"{obj.subject_repr or obj.subject_type} (no longer exists)"
        url = self._subject_url(obj)
        return format_html('<a href="{}">{}</a>', url, current) if url else str(current)

    @admin.display(description="Progress (chunks)")
    def progress(self, obj):
        return obj.progress if obj.chunks_total else "single step"  # its status is in the Status column

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
