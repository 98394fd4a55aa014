from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"

    def ready(self) -> None:
        """Reservations follow the customer: events subscribe to the changes of the apps to their left
        (``events.services.release``)."""
        from devices.signals import device_status_changed
        from enrollments.signals import enrollment_ended, subscription_ended

        from .services import release

        enrollment_ended.connect(release.on_enrollment_ended, dispatch_uid="events.release.enrollment_ended")
        subscription_ended.connect(release.on_subscription_ended, dispatch_uid="events.release.subscription_ended")
        device_status_changed.connect(release.on_device_status_changed,
                                      dispatch_uid="events.release.device_status_changed")
