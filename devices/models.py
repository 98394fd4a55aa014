"""Where devices live (premises, service points) and what they are (devices, aggregators, installations)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from .choices import CustomerClass, DeviceOwnership, DeviceStatus, DeviceType


class Premise(models.Model):
    """A physical location, with its place in the distribution network."""

    premise_id = models.CharField(max_length=64, unique=True, help_text="CIS premise id.")
    address_line1 = models.CharField(max_length=200)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100)
    state = models.CharField(max_length=32, blank=True)
    postal_code = models.CharField(max_length=16, blank=True)
    service_territory = models.CharField(max_length=64, blank=True, db_index=True)
    substation = models.CharField(max_length=64, blank=True, db_index=True)
    feeder = models.CharField(max_length=64, blank=True, db_index=True)
    transformer = models.CharField(max_length=64, blank=True)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)

    class Meta:
        ordering = ["premise_id"]
        indexes = [models.Index(fields=["address_line1"], name="premise_address_idx")]

    def __str__(self) -> str:
        return f"{self.premise_id} {self.address_line1}"


class ServicePoint(models.Model):
    """A metered point of delivery at a premise (the unit of interval data and of baselines)."""

    service_point_id = models.CharField(max_length=64, unique=True)
    meter_number = models.CharField(max_length=64, blank=True, db_index=True)
    premise = models.ForeignKey(Premise, on_delete=models.PROTECT, related_name="service_points")
    customer_class = models.CharField(max_length=24, choices=CustomerClass.choices, default=CustomerClass.RESIDENTIAL)
    rate_code = models.CharField(max_length=32, blank=True, db_index=True)
    is_active = models.BooleanField(default=True)
    net_metered = models.BooleanField(default=False)

    class Meta:
        ordering = ["service_point_id"]

    def __str__(self) -> str:
        return self.service_point_id


class Aggregator(models.Model):
    """A third party (OEM cloud or aggregator) that talks to devices; ``api_user`` is its API client."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    contact_name = models.CharField(max_length=200, blank=True)
    contact_email = models.EmailField(blank=True)
    api_user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="aggregator")
    webhook_url = models.URLField(blank=True, help_text="Dispatch messages are POSTed here when set.")
    webhook_secret = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Device(models.Model):
    """A customer-owned controllable device, known to cpm through its aggregator."""

    device_type = models.CharField(max_length=20, choices=DeviceType.choices)
    manufacturer = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    serial_number = models.CharField(max_length=100, blank=True, db_index=True)
    aggregator = models.ForeignKey(Aggregator, on_delete=models.PROTECT, related_name="devices")
    aggregator_device_id = models.CharField(max_length=128)
    ownership = models.CharField(max_length=16, choices=DeviceOwnership.choices,
                                 default=DeviceOwnership.CUSTOMER_OWNED)
    capacity_kw = models.DecimalField("capacity kW", max_digits=9, decimal_places=3,
                                      help_text="Controllable capacity, kW.")
    usable_energy_kwh = models.DecimalField("usable energy kWh", max_digits=9, decimal_places=3, null=True, blank=True,
                                            help_text="Batteries: usable energy, kWh.")
    firmware_version = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=DeviceStatus.choices, default=DeviceStatus.REGISTERED,
                              editable=False)
    last_seen_at = models.DateTimeField(null=True, blank=True, help_text="UTC time the device was last online.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["aggregator", "aggregator_device_id"], name="device_unique_per_aggregator"),
            models.CheckConstraint(condition=Q(ownership=DeviceOwnership.CUSTOMER_OWNED),
                                   name="device_customer_owned_only",
                                   violation_error_message="Utility-owned devices are out of scope."),
            models.CheckConstraint(condition=Q(capacity_kw__gte=0), name="device_capacity_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.get_device_type_display()} {self.serial_number or self.aggregator_device_id}"


class DeviceInstallation(models.Model):
    """A device installed at a service point for local dates ``[installed_on, removed_on)``.

    A device is at one service point at a time: at most one open installation (database constraint); services close
    the old period when it moves.
    """

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="installations")
    service_point = models.ForeignKey(ServicePoint, on_delete=models.PROTECT, related_name="installations")
    installed_on = models.DateField()
    removed_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["device", "installed_on"]
        constraints = [
            models.UniqueConstraint(fields=["device"], condition=Q(removed_on__isnull=True),
                                    name="device_one_open_installation"),
            models.CheckConstraint(condition=Q(removed_on__isnull=True) | Q(removed_on__gte=F("installed_on")),
                                   name="installation_period_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.device} at service point {self.service_point} from {self.installed_on}"
