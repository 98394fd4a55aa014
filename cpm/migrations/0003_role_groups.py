"""Create the role groups (their permissions are synced after each migrate by cpm.base.roles.sync_roles)."""

from django.db import migrations

ROLE_NAMES = ["Program administrator", "CSR", "Settlement analyst", "Auditor", "CIS integration",
              "Billing integration", "Aggregator"]


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLE_NAMES:
        Group.objects.get_or_create(name=name)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_NAMES).delete()


class Migration(migrations.Migration):
    dependencies = [("cpm", "0002_capability"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(create_groups, remove_groups)]
