from django.apps import AppConfig


class SettlementConfig(AppConfig):
    name = "settlement"

    def ready(self) -> None:
        from . import forecast, signals

        signals.connect()
        forecast.connect()
