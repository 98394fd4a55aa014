import pytest


@pytest.fixture(autouse=True)
def _no_ssl_redirect(settings):
    """This branch's settings redirect to HTTPS when DEBUG is off (main now keys it on PRODUCTION)."""
    settings.SECURE_SSL_REDIRECT = False
    # Fast hashing for the users these tests create (PBKDF2 costs ~1 s per user).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
