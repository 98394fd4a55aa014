from django.apps import AppConfig


class EnrollmentsConfig(AppConfig):
    name = "enrollments"

    def ready(self) -> None:
        from devices.signals import device_removed
        from programs.signals import mutual_exclusion_creating, program_closed

        from .selectors import mutual_exclusion_creating_receiver
        from .services import device_removed_receiver, program_closed_receiver

        device_removed.connect(device_removed_receiver, dispatch_uid="enrollments.device_removed")
        program_closed.connect(program_closed_receiver, dispatch_uid="enrollments.program_closed")
        mutual_exclusion_creating.connect(mutual_exclusion_creating_receiver,
                                          dispatch_uid="enrollments.mutual_exclusion_creating")
