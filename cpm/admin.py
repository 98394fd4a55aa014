"""Admin for the audit trail (visible, searchable, never editable) and the base of large changelists."""

from django.contrib import admin

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

    list_display = ("id", "kind", "subject_repr", "status", "progress", "created_at", "finished_at", "error")
    list_filter = ("status", "kind")
    search_fields = ("subject_repr", "subject_id", "error")
    inlines = [JobChunkInline]

    @admin.display(description="Progress (chunks)")
    def progress(self, obj):
        return obj.progress

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
