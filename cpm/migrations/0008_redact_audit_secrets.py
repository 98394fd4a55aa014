"""Credentials out of the audit trail written before they were redacted at the source (``cpm.base.masking``).

Audit entries are never edited, with this one exception: an aggregator's ``webhook_secret`` (whoever knows it can
send the aggregator's cloud correctly signed forged dispatches) was recorded in plain text by every create and
update of an aggregator until the audit began to record only whether one is set. The entries keep who, when, what
and why; the secret's value becomes ``"(set)"`` (a change: ``["(set)", "(changed)"]``, ``""`` where there was
none), as entries written since say. Reversing it cannot bring the values back, and should not.
"""

from django.db import migrations


def _state(value) -> str:
    return "(set)" if value not in (None, "", "None") else ""


def redact(changes: dict) -> dict:
    """``changes`` with every credential key's value (a key holding "secret" or "password") replaced by whether it
    is set; the rule of ``cpm.base.masking.redacted_changes`` at the time of this migration."""
    out = dict(changes or {})
    for key, value in out.items():
        lowered = str(key).lower()
        if ("secret" not in lowered and "password" not in lowered) or value in ("(set)", "", None):
            continue
        if isinstance(value, list | tuple) and len(value) == 2:
            old, new = (_state(v) for v in value)
            out[key] = [old, "(changed)" if new and old else new]
        else:
            out[key] = _state(value)
    return out


def redact_secrets(apps, schema_editor):
    AuditEntry = apps.get_model("cpm", "AuditEntry")
    for entry in AuditEntry.objects.filter(object_type="devices.aggregator").only("pk", "changes").iterator(
            chunk_size=2000):
        redacted = redact(entry.changes) if isinstance(entry.changes, dict) else entry.changes
        if redacted != entry.changes:
            AuditEntry.objects.filter(pk=entry.pk).update(changes=redacted)


class Migration(migrations.Migration):

    dependencies = [
        ("cpm", "0007_job_results"),
    ]

    operations = [
        migrations.RunPython(redact_secrets, migrations.RunPython.noop),
    ]
