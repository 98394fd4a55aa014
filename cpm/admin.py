"""Admin for the audit trail (visible, searchable, never editable) and the base of large changelists."""

from django.contrib import admin

from .models import AuditEntry
from .pagination import EstimatedCountPaginator


class LargeTableMixin:
    """Changelists of tables that grow with the utility (customers, devices, participations, interval days): one
    count per page, not a second one of the whole table, and the planner's estimate above 10,000 rows
    (``cpm.pagination``), so a page costs the same at any size."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(AuditEntry)
class AuditEntryAdmin(LargeTableMixin, admin.ModelAdmin):
    list_display = ("at", "actor_label", "action", "object_type", "object_id", "object_repr", "from_status",
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
