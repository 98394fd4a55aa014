from django.apps import AppConfig


class OpenADR3Config(AppConfig):
    name = "cpm.openadr3"
    label = "openadr3"
    verbose_name = "OpenADR 3 VTN"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the events signals)
