from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "cpm.notifications"
    label = "notifications"
    verbose_name = "Customer notifications"
    default_auto_field = "django.db.models.BigAutoField"
