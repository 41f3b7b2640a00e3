"""`make_http_get`: allow-list, address checks, IP pinning, timeout and size cap.

Everything runs against a server on 127.0.0.1; nothing touches the internet. Reaching the
local server needs ``allow_private=True``; the refusals are checked with the default.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kimi_agent_tools import InvalidInputError, RefusedError, ToolFailure, make_http_get
from kimi_agent_tools import http_get as http_get_module
from kimi_agent_tools.http_get import HttpGetPolicy

from kimi_agent import Tool
from kimi_agent.tooling._dialect import check_moonshot

pytestmark = pytest.mark.anyio

BIG_CHARS = 100_000  # "中" is 3 bytes in UTF-8


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        if path == "/hello":
            self.send(200, "你好，世界".encode(), "text/plain; charset=utf-8")
        elif path == "/json":
            body = json.dumps({"订单": "A1024", "状态": "已发货"}, ensure_ascii=False)
            self.send(200, body.encode(), "application/json")
        elif path == "/gbk":
            self.send(200, "<p>欢迎光临</p>".encode("gbk"), "text/html; charset=GBK")
        elif path == "/big":
            self.send(200, ("中" * BIG_CHARS).encode(), "text/plain; charset=utf-8")
        elif path == "/slow":
            time.sleep(2)
            self.send(200, b"late", "text/plain")
        elif path == "/image":
            self.send(200, b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png")
        elif path == "/echo":
            echo = {"host": self.headers.get("Host"), "agent": self.headers.get("User-Agent")}
            self.send(200, json.dumps(echo).encode(), "application/json")
        elif path == "/missing":
            self.send(404, "页面不存在".encode(), "text/plain; charset=utf-8")
        elif path == "/redirect":
            self.send(302, b"", "text/plain", Location="/hello")
        elif path == "/redirect-away":
            self.send(302, b"", "text/plain", Location="http://evil.example/steal")
        elif path == "/redirect-loop":
            self.send(302, b"", "text/plain", Location="/redirect-loop")
        elif path == "/echo-auth":
            auth = {"authorization": self.headers.get("Authorization")}
            self.send(200, json.dumps(auth).encode(), "application/json")
        elif path.startswith("/redirect-host/"):
            port = path.rsplit("/", 1)[1]
            self.send(302, b"", "text/plain", Location=f"http://localhost:{port}/echo-auth")
        elif path == "/redirect-utf8":
            self.send_response(302)
            self.send_header("Content-Length", "0")
            # a raw UTF-8 Location, as some servers send one (not valid in a header)
            self._headers_buffer.append("Location: http://例子。测试/订单\r\n".encode())
            self.end_headers()
        else:
            self.send(404, b"", "text/plain")


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up (timeouts, size caps) are expected here


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def local(**options: Any) -> Tool:
    """An http_get allowed to reach the local test server."""
    return make_http_get(["127.0.0.1"], allow_private=True, **options)


# --------------------------------------------------------------------------- the tool


def test_schema_and_description_name_the_allowed_hosts() -> None:
    tool = make_http_get(["api.example.com", "*.example.cn"], timeout=5)
    assert isinstance(tool, Tool)
    assert tool.name == "http_get"
    assert tool.is_async
    assert set(tool.parameters["properties"]) == {"url"}
    assert tool.parameters["required"] == ["url"]
    assert check_moonshot(tool.parameters) == []
    assert "api.example.com" in tool.description and "*.example.cn" in tool.description
    assert tool.timeout is not None and tool.timeout > 5  # our own deadline fires first
    assert make_http_get(["x.example"], name="fetch_docs").name == "fetch_docs"


def test_factory_refuses_nonsense_configuration() -> None:
    with pytest.raises(ValueError):
        make_http_get(["example.com"], timeout=0)
    with pytest.raises(ValueError):
        make_http_get(["example.com"], max_bytes=0)


# --------------------------------------------------------------------------- fetching


async def test_fetches_utf8_text(server: str) -> None:
    result = await local()(f"http://{server}/hello")
    assert result == {
        "url": f"http://{server}/hello",
        "status": 200,
        "content_type": "text/plain; charset=utf-8",
        "bytes": len("你好，世界".encode()),
        "truncated": False,
        "text": "你好，世界",
    }


async def test_json_and_declared_charsets_are_decoded(server: str) -> None:
    tool = local()
    assert json.loads((await tool(f"http://{server}/json"))["text"])["状态"] == "已发货"
    assert (await tool(f"http://{server}/gbk"))["text"] == "<p>欢迎光临</p>"


async def test_non_2xx_is_a_result_the_model_can_read(server: str) -> None:
    result = await local()(f"http://{server}/missing")
    assert result["status"] == 404
    assert result["text"] == "页面不存在"


async def test_binary_content_is_not_dumped_as_text(server: str) -> None:
    result = await local()(f"http://{server}/image")
    assert result["text"] == ""
    assert "image/png" in result["message"]


async def test_body_is_cut_at_max_bytes_without_a_broken_character(server: str) -> None:
    result = await local(max_bytes=1000)(f"http://{server}/big")
    assert result["truncated"] is True
    assert result["bytes"] == 1000
    assert result["text"] == "中" * 333  # the half character at the cap is dropped
    assert "\ufffd" not in result["text"]


async def test_timeout_bounds_the_whole_call(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(ToolFailure, match="超时"):
        await local(timeout=0.3)(f"http://{server}/slow")
    assert time.monotonic() - started < 1.5


async def test_redirects_are_followed_and_rechecked(server: str) -> None:
    result = await local()(f"http://{server}/redirect")
    assert result["url"] == f"http://{server}/hello"
    assert result["text"] == "你好，世界"
    with pytest.raises(RefusedError, match=r"evil\.example"):
        await local()(f"http://{server}/redirect-away")
    with pytest.raises(ToolFailure, match="重定向次数过多"):
        await local(max_redirects=2)(f"http://{server}/redirect-loop")


async def test_configured_headers_never_follow_a_redirect_to_another_host(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    tool = make_http_get(["127.0.0.1", "localhost"], allow_private=True,
                         headers={"Authorization": "Bearer 秘密"[:7] + "secret"})
    direct = await tool(f"http://{server}/echo-auth")
    assert json.loads(direct["text"]) == {"authorization": "Bearer secret"}
    moved = await tool(f"http://{server}/redirect-host/{port}")
    assert moved["url"].startswith("http://localhost:")
    assert json.loads(moved["text"]) == {"authorization": None}


async def test_a_non_ascii_redirect_is_a_clear_tool_failure(server: str) -> None:
    with pytest.raises(ToolFailure):
        await local()(f"http://{server}/redirect-utf8")


# --------------------------------------------------------------------------- refusals


async def test_host_not_on_the_allow_list_is_refused(server: str) -> None:
    tool = make_http_get(["example.com"], allow_private=True)
    with pytest.raises(RefusedError) as error:
        await tool(f"http://{server}/hello")
    assert "不允许访问主机 127.0.0.1" in str(error.value)
    assert "allow-list" in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
    ],
)
async def test_only_http_and_https(url: str) -> None:
    with pytest.raises(RefusedError, match="只支持 http 和 https"):
        await make_http_get(["*"])(url)


@pytest.mark.parametrize("url", ["http://", "not a url", "http://exa mple.com/"])
async def test_malformed_urls(url: str) -> None:
    with pytest.raises((InvalidInputError, RefusedError)):
        await make_http_get(["*"])(url)


async def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(RefusedError, match="用户名或密码"):
        await make_http_get(["example.com"])("https://user:secret@example.com/")


async def test_loopback_is_refused_unless_allowed(server: str) -> None:
    with pytest.raises(RefusedError) as error:
        await make_http_get(["127.0.0.1"])(f"http://{server}/hello")
    assert "内网或本机地址 127.0.0.1" in str(error.value)


async def test_names_are_checked_after_resolution(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    with pytest.raises(RefusedError, match="localhost"):  # localhost resolves to loopback
        await make_http_get(["localhost"])(f"http://localhost:{port}/hello")


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1", "172.16.5.4", "192.168.1.1",  # private
        "169.254.169.254",  # link-local: cloud metadata endpoints
        "100.64.0.1",  # shared address space (carrier-grade NAT)
        "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255",
        "::1", "fe80::1", "fc00::1", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    ],
)
async def test_non_public_addresses_are_refused(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(RefusedError, match="内网或本机地址"):
        await make_http_get(["*"])(f"http://{host}/")


async def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]  # one public, one private

    monkeypatch.setattr(http_get_module, "_resolve", resolve)
    with pytest.raises(RefusedError, match=r"10\.0\.0\.7"):
        await make_http_get(["shop.example.com"])("https://shop.example.com/")


async def test_connection_goes_to_the_checked_address(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding guard: the host is resolved once, and that address is what we connect
    to — a second, different DNS answer is never consulted. The Host header keeps the name."""
    port = server.rsplit(":", 1)[1]
    answers = iter([["127.0.0.1"], ["10.66.66.66"]])
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    monkeypatch.setattr(http_get_module, "_resolve", resolve)
    tool = make_http_get(["shop.example.com"], allow_private=True)
    result = await tool(f"http://shop.example.com:{port}/echo")
    assert calls == ["shop.example.com"]
    echo = json.loads(result["text"])
    assert echo["host"] == f"shop.example.com:{port}"
    assert echo["agent"].startswith("kimi-agent")
    assert result["url"] == f"http://shop.example.com:{port}/echo"


async def test_next_checked_address_is_tried_when_one_refuses(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = server.rsplit(":", 1)[1]
    answer = ["127.0.0.2", "127.0.0.1"]  # nothing listens on 127.0.0.2

    async def resolve(host: str, port: int) -> list[str]:
        return answer

    monkeypatch.setattr(http_get_module, "_resolve", resolve)
    tool = make_http_get(["shop.example.com"], allow_private=True)
    assert (await tool(f"http://shop.example.com:{port}/hello"))["text"] == "你好，世界"
    answer = ["127.0.0.2"]
    with pytest.raises(ToolFailure, match="无法连接"):
        await tool(f"http://shop.example.com:{port}/hello")


def test_allow_list_patterns() -> None:
    policy = HttpGetPolicy(frozenset({"example.com", "*.shop.cn", "::1"}))
    assert policy.host_allowed("example.com")
    assert policy.host_allowed("EXAMPLE.com.")
    assert not policy.host_allowed("api.example.com")  # exact names are exact
    assert policy.host_allowed("api.shop.cn")
    assert policy.host_allowed("a.b.shop.cn")
    assert not policy.host_allowed("shop.cn")  # the wildcard means subdomains only
    assert not policy.host_allowed("evilshop.cn")
    assert policy.host_allowed("[::1]")
    assert not policy.host_allowed("example.com.evil.net")


async def test_chinese_domain_names_are_matched_in_punycode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        assert host == "xn--fiqs8s.xn--fiqs8s"  # 中国.中国
        return ["192.168.0.9"]

    monkeypatch.setattr(http_get_module, "_resolve", resolve)
    with pytest.raises(RefusedError, match=r"192\.168\.0\.9"):  # allowed name, private address
        await make_http_get(["中国.中国"])("http://中国.中国/")


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """An HTTPS server on 127.0.0.1 whose certificate names shop.example.com (own CA)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=kimi-agent test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
        "-subj", "/CN=shop.example.com")
    (d / "leaf.ext").write_text(
        "subjectAltName=DNS:shop.example.com\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(d / "leaf.pem", d / "leaf.key")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield str(httpd.server_address[1]), str(d / "ca.pem")
    httpd.shutdown()
    httpd.server_close()


async def test_https_to_the_pinned_address_verifies_the_host_name(
    tls_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to the checked IP, yet TLS still sends the name (SNI) and checks
    the certificate against it — pinning does not weaken certificate verification."""
    port, ca = tls_server

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    monkeypatch.setattr(http_get_module, "_resolve", resolve)
    trust = ssl.create_default_context(cafile=ca)
    tool = make_http_get(["shop.example.com", "other.example.com"], allow_private=True,
                         verify=trust)
    result = await tool(f"https://shop.example.com:{port}/echo")
    assert result["status"] == 200
    assert json.loads(result["text"])["host"] == f"shop.example.com:{port}"
    with pytest.raises(ToolFailure, match="无法连接"):  # the certificate does not name it
        await tool(f"https://other.example.com:{port}/echo")
    with pytest.raises(ToolFailure, match="无法连接"):  # not trusted without our CA
        await make_http_get(["shop.example.com"], allow_private=True)(
            f"https://shop.example.com:{port}/echo"
        )
