"""Fixtures for enrollment tests: an open account served at a service point with a thermostat installed there."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from tests.factories.devices import DeviceFactory, DeviceInstallationFactory, ServicePointFactory
from tests.factories.enrollments import AccountFactory, ServiceAgreementFactory
from tests.factories.programs import ProgramFactory

DAY = dt.date(2026, 5, 15)  # the local date of the ``now`` fixture in America/Los_Angeles


@dataclass
class Site:
    program: object
    account: object
    service_point: object
    device: object

    def request_kwargs(self, **overrides):
        kwargs = {"account": self.account, "service_point": self.service_point, "program": self.program,
                  "devices": [self.device], "source": "csr"}
        kwargs.update(overrides)
        return kwargs


def make_site(program=None, *, device_type="thermostat", account=None, service_point=None) -> Site:
    program = program or ProgramFactory()
    account = account or AccountFactory()
    service_point = service_point or ServicePointFactory()
    ServiceAgreementFactory(account=account, service_point=service_point)
    device = DeviceFactory(device_type=device_type)
    DeviceInstallationFactory(device=device, service_point=service_point)
    return Site(program=program, account=account, service_point=service_point, device=device)


@pytest.fixture
def site(db) -> Site:
    return make_site()


@pytest.fixture(autouse=True)
def _no_ssl_redirect(settings):
    """This branch's settings redirect to HTTPS when DEBUG is off (main now keys it on PRODUCTION)."""
    settings.SECURE_SSL_REDIRECT = False
    # Fast hashing for the users these tests create (PBKDF2 costs ~1 s per user).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
