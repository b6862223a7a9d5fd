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


class _Pieces(httpx.AsyncByteStream):
    """A body sent in 64 KiB pieces, as a socket delivers it; `cut`: the connection drops
    after that many bytes."""

    def __init__(self, body: bytes, cut: int | None = None) -> None:
        self.body, self.cut = body, cut

    async def __aiter__(self):
        sent = self.body[:self.cut]
        for start in range(0, len(sent), 1 << 16):
            yield sent[start:start + (1 << 16)]
        if self.cut is not None:
            raise httpx.RemoteProtocolError("peer closed connection without sending the body")


def test_a_body_of_many_batches_is_archived_byte_for_byte_with_its_sha256():
    import hashlib
    import os

    from providers.download import BATCH_BYTES

    body = os.urandom(3 * BATCH_BYTES + 12345)  # three batches and a short rest
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(
        200, headers={"content-type": "video/mp4", "content-length": str(len(body))},
        stream=_Pieces(body))))
    sink = io.BytesIO()
    done = asyncio.run(stream_to(client, "http://cdn.test/v.mp4", sink,
                                 trusted_hosts=frozenset({"cdn.test"})))
    assert sink.getvalue() == body
    assert (done.bytes, done.sha256) == (len(body), hashlib.sha256(body).hexdigest())


def test_a_body_cut_mid_batch_resumes_where_the_sink_ends_with_the_whole_file_s_sha256():
    import hashlib
    import os

    from providers.download import BATCH_BYTES

    body = os.urandom(2 * BATCH_BYTES + 777)
    cut = BATCH_BYTES + BATCH_BYTES // 3  # one whole batch stored, the next one partly
    asked: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("range"))
        if "range" not in request.headers:  # declares the whole length, sends part of it
            return httpx.Response(200, headers={"content-type": "video/mp4",
                                                "content-length": str(len(body))},
                                  stream=_Pieces(body, cut))
        start = int(request.headers["range"].removeprefix("bytes=").rstrip("-"))
        return httpx.Response(206, headers={
            "content-type": "video/mp4", "content-length": str(len(body) - start),
            "content-range": f"bytes {start}-{len(body) - 1}/{len(body)}"},
            stream=_Pieces(body[start:]))

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    sink = io.BytesIO()
    done = asyncio.run(stream_to(client, "http://cdn.test/v.mp4", sink,
                                 trusted_hosts=frozenset({"cdn.test"})))
    assert asked == [None, f"bytes={cut}-"]
    assert sink.getvalue() == body and done.resumed == 1
    assert done.sha256 == hashlib.sha256(body).hexdigest()


def test_an_encoded_body_is_archived_decoded_and_an_identity_one_as_it_came():
    """The raw stream is taken only when nothing is to be decoded."""
    import gzip
    import hashlib
    import os

    body = os.urandom(100_000)
    for headers, wire in (({"content-encoding": "gzip"}, gzip.compress(body)),
                          ({"content-encoding": "identity"}, body), ({}, body)):
        sink = io.BytesIO()
        client = _serving({"content-type": "video/mp4", **headers}, wire)
        done = asyncio.run(stream_to(client, "http://cdn.test/v.mp4", sink,
                                     trusted_hosts=frozenset({"cdn.test"})))
        assert sink.getvalue() == body and done.sha256 == hashlib.sha256(body).hexdigest()
