from django.apps import AppConfig


class EnrollmentsConfig(AppConfig):
    name = "enrollments"

    def ready(self) -> None:
        from devices.signals import device_removed

        from .services import device_removed_receiver

        device_removed.connect(device_removed_receiver, dispatch_uid="enrollments.device_removed")
