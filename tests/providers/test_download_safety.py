import asyncio
import io

import httpx
import pytest

from providers.download import check_url, stream_to
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
    asyncio.run(check_url("http://127.0.0.1:8123/files/x.mp4", frozenset({"127.0.0.1:8123"})))


@pytest.mark.parametrize("url", ["http://127.0.0.1:22/x.mp4", "http://127.0.0.1/x.mp4",
                                 "https://127.0.0.1:9000/x.mp4"])
def test_only_the_sandbox_s_own_port_is_trusted(url):
    with pytest.raises(InvalidRequest):
        asyncio.run(check_url(url, frozenset({"127.0.0.1:8123"})))


def test_a_public_https_address_passes():
    asyncio.run(check_url("https://93.184.216.34/v.mp4", frozenset()))


def _serving(headers: dict[str, str], body: bytes) -> httpx.AsyncClient:
    """A client whose every GET answers `headers` and streams `body` (no socket at all)."""
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def test_a_declared_2gb_body_is_refused_before_a_byte_is_written(catalog):
    cap = catalog.row("kling-v3-fal").max_output_bytes  # 15 s at 1080p: ~172 MiB
    assert 100 << 20 < cap < 2 << 30
    client = _serving({"content-type": "video/mp4", "content-length": str(2 << 30)}, b"x" * 10)
    sink = io.BytesIO()
    with pytest.raises(InvalidRequest, match="over"):
        asyncio.run(stream_to(client, "http://cdn.test/v.mp4", sink,
                              trusted_hosts=frozenset({"cdn.test"}), max_bytes=cap))
    assert sink.getvalue() == b""


def test_a_body_that_streams_past_the_cap_without_declaring_it_is_cut_off():
    client = _serving({"content-type": "video/mp4"}, b"x" * 5000)
    sink = io.BytesIO()
    with pytest.raises(InvalidRequest, match="passed 4096 bytes"):
        asyncio.run(stream_to(client, "http://cdn.test/v.mp4", sink,
                              trusted_hosts=frozenset({"cdn.test"}), max_bytes=4096))
    assert len(sink.getvalue()) <= 4096  # nothing past the cap reaches the disk
