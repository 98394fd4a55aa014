from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CpmConfig(AppConfig):
    name = "cpm"
    verbose_name = "cpm (audit and roles)"

    def ready(self) -> None:
        from .base import lookups, numbers
        from .base.roles import sync_roles
        from .base.uploads import raise_csv_field_limit

        lookups.register()
        numbers.install()
        raise_csv_field_limit()
        post_migrate.connect(sync_roles, dispatch_uid="cpm.sync_roles")
