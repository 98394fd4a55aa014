"""Factories for the enrollments app.

``ActiveEnrollmentFactory`` builds a ready-to-reserve participant: an open account with a service agreement at a
service point, an ACTIVE enrollment from 2026-01-01 and one device subscription (device installed at that point).
"""

import datetime as dt

import factory

from enrollments.choices import AccountStatus, EnrollmentSource, EnrollmentStatus
from enrollments.models import Account, Customer, Enrollment, ProgramSubscription, ServiceAgreement

from .devices import DeviceFactory, DeviceInstallationFactory, ServicePointFactory
from .programs import ProgramFactory


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    cis_person_id = factory.Sequence(lambda n: f"PER-{n:07d}")
    first_name = "Pat"
    last_name = factory.Sequence(lambda n: f"Customer{n}")
    email = factory.LazyAttribute(lambda o: f"{o.last_name.lower()}@example.com")
    phone = "555-0100"


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    account_number = factory.Sequence(lambda n: f"ACC-{n:08d}")
    customer = factory.SubFactory(CustomerFactory)
    status = AccountStatus.OPEN
    opened_on = dt.date(2020, 1, 1)


class ServiceAgreementFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceAgreement

    agreement_id = factory.Sequence(lambda n: f"SA-{n:08d}")
    account = factory.SubFactory(AccountFactory)
    service_point = factory.SubFactory(ServicePointFactory)
    start_date = dt.date(2020, 1, 1)


class EnrollmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Enrollment

    account = factory.SubFactory(AccountFactory)
    service_point = factory.SubFactory(ServicePointFactory)
    program = factory.SubFactory(ProgramFactory)
    status = EnrollmentStatus.ACTIVE
    source = EnrollmentSource.CSR
    requested_at = dt.datetime(2025, 12, 15, 17, 0, tzinfo=dt.UTC)
    effective_date = dt.date(2026, 1, 1)


class ProgramSubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProgramSubscription

    enrollment = factory.SubFactory(EnrollmentFactory)
    device = factory.SubFactory(DeviceFactory)
    start_date = dt.date(2026, 1, 1)
    exclusive = True


def active_participant(*, program, device_kwargs=None, service_point=None, account=None, start=dt.date(2026, 1, 1)):
    """Create account + agreement + installed device + ACTIVE enrollment + open subscription; return the
    subscription. ``device_kwargs`` go to ``DeviceFactory``; ``device_kwargs=False`` subscribes no device.
    An open agreement of ``account`` at ``service_point`` is reused when there is one."""
    service_point = service_point or ServicePointFactory()
    account = account or AccountFactory()
    if not ServiceAgreement.objects.filter(account=account, service_point=service_point,
                                           end_date__isnull=True).exists():
        ServiceAgreementFactory(account=account, service_point=service_point)
    enrollment = EnrollmentFactory(account=account, service_point=service_point, program=program,
                                   effective_date=start)
    device = None
    if device_kwargs is not False:
        device = DeviceFactory(**(device_kwargs or {}))
        DeviceInstallationFactory(device=device, service_point=service_point)
    return ProgramSubscriptionFactory(enrollment=enrollment, device=device, start_date=start,
                                      exclusive=not program.allows_co_enrollment)


def staff_user(role: str, username: str | None = None):
    """A staff user (may sign in to the admin) holding one role group of ``cpm.base.roles``."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user_model = get_user_model()
    user = user_model.objects.create_user(username or role.lower().replace(" ", "-"), password="pw-Role-123456",
                                          is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user_model.objects.get(pk=user.pk)  # a fresh instance: no stale permission cache
