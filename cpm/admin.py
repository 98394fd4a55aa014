"""Admin for the audit trail (visible, searchable, never editable) and the base of large changelists."""

from django.contrib import admin

from .base.admin import LargeTableMixin
from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(LargeTableMixin, admin.ModelAdmin):
    list_display = ("at", "actor_label", "code", "object_type", "object_id", "object_repr", "from_status",
                    "to_status")
    # A date filter of fixed choices, not a date hierarchy (which scans every entry on every page).
    list_filter = ("action", "object_type", ("at", admin.DateFieldListFilter))
    search_fields = ("object_id", "object_repr", "actor_label", "reason")
    list_select_related = ("actor",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
