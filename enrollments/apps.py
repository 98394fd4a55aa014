from django.apps import AppConfig


class EnrollmentsConfig(AppConfig):
    name = "enrollments"

    def ready(self) -> None:
        from devices.signals import device_removed
        from programs.signals import program_closed

        from .services import device_removed_receiver, program_closed_receiver

        device_removed.connect(device_removed_receiver, dispatch_uid="enrollments.device_removed")
        program_closed.connect(program_closed_receiver, dispatch_uid="enrollments.program_closed")
