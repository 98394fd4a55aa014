from django.apps import AppConfig


class CpmConfig(AppConfig):
    name = "cpm"
    verbose_name = "cpm (audit)"
