"""Roles: Django groups created by a migration, their permissions synced after every migrate (idempotent).

A role grants permission patterns ``app_label.codename`` (``fnmatch`` wildcards), so a role keeps its meaning as apps
add models. Least privilege: a CSR cannot approve or export; an auditor can only read; API clients get what their
integration needs.
"""

from __future__ import annotations

from fnmatch import fnmatch

PROGRAM_ADMIN = "Program administrator"
CSR = "CSR"
SETTLEMENT_ANALYST = "Settlement analyst"
AUDITOR = "Auditor"
CIS_INTEGRATION = "CIS integration"
BILLING_INTEGRATION = "Billing integration"
AGGREGATOR = "Aggregator"

# Every app, the customer notifications and the OpenADR 3 VTN included (their admin hides contact details without
# view_personal_data and never shows a webhook's bearer token).
_VIEW_ALL = ["programs.view_*", "devices.view_*", "enrollments.view_*", "events.view_*", "settlement.view_*",
             "notifications.view_*", "openadr3.view_*"]
# The admin's Jobs page (read only: progress, chunks, attempts and errors of loads, reservations and settlement
# batches), which the batch and load pages link to: for the staff roles that follow a stuck or failed job.
_VIEW_JOBS = ["cpm.view_job", "cpm.view_jobchunk"]

ROLES: dict[str, list[str]] = {
    PROGRAM_ADMIN: [
        *_VIEW_ALL, "programs.*", "events.add_*", "events.change_*", "enrollments.change_*",
        "devices.change_*", "devices.add_*", "cpm.manage_programs", "cpm.maintain_customers", "cpm.manage_devices",
        "cpm.request_enrollments", "cpm.manage_enrollments", "cpm.approve_enrollments", "cpm.manage_events",
        "cpm.use_csr_page", "cpm.view_personal_data", "cpm.opt_out_on_behalf", "cpm.view_auditentry", *_VIEW_JOBS,
    ],
    CSR: [
        *_VIEW_ALL, "enrollments.add_enrollment", "enrollments.change_enrollment", "events.add_unavailability",
        "events.add_optout", "cpm.use_csr_page", "cpm.view_personal_data", "cpm.opt_out_on_behalf",
        "cpm.request_enrollments", "cpm.manage_enrollments",
    ],
    SETTLEMENT_ANALYST: [
        *_VIEW_ALL, "settlement.add_*", "settlement.change_*", "cpm.approve_settlements", "cpm.export_credits",
        "cpm.pull_bill_credits", "cpm.load_meter_data", "cpm.run_settlement", *_VIEW_JOBS,
    ],
    AUDITOR: [*_VIEW_ALL, "programs.view_historical*", "cpm.view_auditentry", "auth.view_user", "auth.view_group",
              *_VIEW_JOBS],
    CIS_INTEGRATION: [
        "devices.view_premise", "devices.add_premise", "devices.change_premise", "devices.view_servicepoint",
        "devices.add_servicepoint", "devices.change_servicepoint", "enrollments.view_customer",
        "enrollments.add_customer", "enrollments.change_customer", "enrollments.view_account",
        "enrollments.add_account", "enrollments.change_account", "enrollments.view_serviceagreement",
        "enrollments.add_serviceagreement", "enrollments.change_serviceagreement", "enrollments.view_enrollment",
        "enrollments.add_enrollment", "programs.view_program", "cpm.view_personal_data", "cpm.maintain_customers",
        "cpm.request_enrollments",
    ],
    BILLING_INTEGRATION: ["settlement.view_*", "programs.view_program", "cpm.pull_bill_credits"],
    AGGREGATOR: [
        "programs.view_*", "devices.view_device", "devices.add_device", "devices.change_device",
        "devices.view_aggregator", "enrollments.view_enrollment", "enrollments.add_enrollment",
        "enrollments.change_enrollment", "enrollments.view_programsubscription", "events.view_event",
        "events.view_participation", "events.change_participation", "events.add_optout",
        "events.view_dispatchmessage", "cpm.report_outcomes", "cpm.manage_devices", "cpm.request_enrollments",
        "cpm.manage_enrollments",
    ],
}


def permissions_for(role: str, all_permissions) -> list:
    """The Permission objects of ``all_permissions`` matching the role's patterns."""
    patterns = ROLES[role]
    return [p for p in all_permissions
            if any(fnmatch(f"{p.content_type.app_label}.{p.codename}", pat) for pat in patterns)]


def sync_roles(**kwargs) -> None:
    """Create the role groups and set their permissions exactly (post_migrate receiver; idempotent)."""
    from django.contrib.auth.models import Group, Permission

    perms = list(Permission.objects.select_related("content_type"))
    for role in ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(permissions_for(role, perms))
