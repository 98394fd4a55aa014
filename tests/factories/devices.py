"""Factories for the devices app. Devices default to ACTIVE customer-owned thermostats seen online at 2026-05-15."""

import datetime as dt
from decimal import Decimal

import factory

from devices.choices import CustomerClass, DeviceStatus, DeviceType
from devices.models import Aggregator, Device, DeviceInstallation, Premise, ServicePoint


class PremiseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Premise

    premise_id = factory.Sequence(lambda n: f"PREM-{n:06d}")
    address_line1 = factory.Sequence(lambda n: f"{100 + n} Main St")
    city = "Springfield"
    state = "CA"
    postal_code = "90001"
    service_territory = "NORTH"
    substation = "SUB-1"
    feeder = "FDR-11"


class ServicePointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServicePoint

    service_point_id = factory.Sequence(lambda n: f"SP-{n:07d}")
    meter_number = factory.Sequence(lambda n: f"M{n:08d}")
    premise = factory.SubFactory(PremiseFactory)
    customer_class = CustomerClass.RESIDENTIAL
    rate_code = "TOU-D"


class AggregatorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Aggregator
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"agg-{n}")
    name = factory.LazyAttribute(lambda o: o.code.upper())


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    device_type = DeviceType.THERMOSTAT
    manufacturer = "Acme"
    model = "T-1000"
    serial_number = factory.Sequence(lambda n: f"SN{n:08d}")
    aggregator = factory.SubFactory(AggregatorFactory)
    aggregator_device_id = factory.Sequence(lambda n: f"dev-{n}")
    capacity_kw = Decimal("1.500")
    status = DeviceStatus.ACTIVE
    last_seen_at = dt.datetime(2026, 5, 15, 15, 0, tzinfo=dt.UTC)


class DeviceInstallationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceInstallation

    device = factory.SubFactory(DeviceFactory)
    service_point = factory.SubFactory(ServicePointFactory)
    installed_on = dt.date(2025, 1, 1)
