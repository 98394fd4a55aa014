"""Workflow buttons on admin changelists: each names the use case behind it; shown to users who may run it, and to
the others a line saying which capability it needs (issue 17: every workflow finishable in the admin, and where one
is not offered the page says why).

A ModelAdmin lists them as ``changelist_tools = (Tool("Import a CIS extract", "enrollments_customer_import",
"customers.import"), ...)`` with ``ChangelistToolsMixin`` before its admin base class.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from .capabilities import CAPABILITY_LABELS, USE_CASES, Cap, may


@dataclass(frozen=True)
class Tool:
    """A button to a workflow page: its label, the admin URL name (without ``admin:``) and its use case."""

    label: str
    url_name: str
    use_case: str


def needs_text(use_case: str) -> str:
    """``needs the capability 'Load interval meter data'`` (or several, joined by "or")."""
    caps = USE_CASES[use_case].capabilities
    return "needs the capability " + " or ".join(f"'{CAPABILITY_LABELS.get(Cap(c), c)}'" for c in caps)


def tools_for(user, tools) -> tuple[list[dict], list[str]]:
    """(buttons offered to ``user``, lines saying why the others are not)."""
    offered, refused = [], []
    for tool in tools:
        if may(user, tool.use_case):
            offered.append({"label": tool.label, "url": reverse(f"admin:{tool.url_name}")})
        else:
            refused.append(f"{tool.label}: not offered to you; it {needs_text(tool.use_case)} ({tool.use_case}).")
    return offered, refused


class ChangelistToolsMixin:
    change_list_template = "admin/cpm/change_list_tools.html"
    changelist_tools: tuple[Tool, ...] = ()

    def changelist_view(self, request, extra_context=None):
        offered, refused = tools_for(request.user, self.changelist_tools)
        return super().changelist_view(request, {"workflow_tools": offered, "workflow_refused": refused,
                                                 **(extra_context or {})})
