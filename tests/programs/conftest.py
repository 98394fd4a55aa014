import pytest


@pytest.fixture(autouse=True)
def _plain_http(settings):
    """The test client speaks plain HTTP; production settings redirect it to HTTPS (SECURE_SSL_REDIRECT)."""
    settings.SECURE_SSL_REDIRECT = False
