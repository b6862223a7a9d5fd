import asyncio

import pytest

from providers.download import check_url
from providers.errors import InvalidRequest


@pytest.mark.parametrize("url", [
    "http://cdn.example.com/v.mp4",          # not https
    "https://127.0.0.1/v.mp4",               # loopback
    "https://localhost:8443/v.mp4",          # resolves to loopback
    "https://10.0.0.8/v.mp4",                # private
    "https://169.254.169.254/latest/meta",   # link-local metadata service
    "file:///etc/passwd",
])
def test_unsafe_urls_are_refused(url):
    with pytest.raises(InvalidRequest):
        asyncio.run(check_url(url, frozenset()))


def test_the_configured_sandbox_is_trusted_even_over_http():
    asyncio.run(check_url("http://127.0.0.1:8123/files/x.mp4",
                          frozenset({"127.0.0.1:8123", "127.0.0.1"})))


def test_a_public_https_address_passes():
    asyncio.run(check_url("https://93.184.216.34/v.mp4", frozenset()))
