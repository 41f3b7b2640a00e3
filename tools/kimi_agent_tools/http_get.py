"""`http_get`: fetch a web page or API for the model — only from hosts you allow.

网页读取。A model that can fetch any URL can be talked into reading internal services
(server-side request forgery). So the tool is made by a factory that fixes the policy:

    from kimi_agent_tools import make_http_get
    http_get = make_http_get(["api.example.com", "*.example.cn"], timeout=5, max_bytes=50_000)

and every request, including every redirect hop, must pass these checks:

- the scheme is http or https, and the URL has no user name or password in it;
- the host is on the allow-list: exact names, ``*.example.com`` for its subdomains (not the
  name itself), IP literals, or ``"*"`` for any host;
- every address the host resolves to is public: loopback, private, link-local, shared,
  multicast, reserved and unspecified addresses are refused (``allow_private=True`` lifts
  this, e.g. for a service on the same machine or for tests);
- the connection goes to the very address that was checked (the URL's host is replaced by
  that IP; the ``Host`` header and TLS server name keep the real name, so certificates are
  still verified against it). A DNS answer that changes between the check and the
  connection (DNS rebinding) cannot redirect the request;
- the whole call, redirects included, ends within `timeout` seconds;
- at most `max_bytes` of the body are read; the text is marked truncated beyond that.

Proxy settings from the environment are ignored (a proxy would connect on our behalf and
defeat the address check). Non-2xx answers are results, not errors: the model sees the
status. Refusals raise `RefusedError`, malformed URLs `InvalidInputError`, timeouts and
network failures `ToolFailure` (see `kimi_agent_tools.errors`).
"""

from __future__ import annotations

import codecs
import contextlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from kimi_agent import Tool, tool
from kimi_agent_tools.errors import InvalidInputError, RefusedError, ToolFailure

__all__ = ["HttpGetPolicy", "make_http_get"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_TEXT_TYPES = ("json", "xml", "javascript", "ecmascript", "x-www-form-urlencoded", "csv")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "kimi-agent-http-get/0.1"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
    r"(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$",
    re.IGNORECASE,
)


async def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (a seam for tests)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_reserved
        or address.is_unspecified
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    prefix, rest = ("*.", host[2:]) if host.startswith("*.") else ("", host)
    with contextlib.suppress(UnicodeError):
        rest = rest.encode("idna").decode("ascii")
    return prefix + rest


@dataclass(frozen=True)
class HttpGetPolicy:
    """What `http_get` may fetch, and how; `fetch` applies it to one URL."""

    allowed_hosts: frozenset[str]
    timeout: float = 10.0
    max_bytes: int = 100_000
    allow_private: bool = False
    max_redirects: int = 3
    headers: Mapping[str, str] = field(default_factory=dict)
    verify: ssl.SSLContext | bool = True

    def host_allowed(self, host: str) -> bool:
        host = _normalize_host(host)
        if "*" in self.allowed_hosts or host in self.allowed_hosts:
            return True
        return any(
            pattern.startswith("*.") and host.endswith(pattern[1:])
            for pattern in self.allowed_hosts
        )

    def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """The parsed URL if its scheme, credentials and host pass; else raise."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as error:
            raise InvalidInputError(f"网址格式不正确：{url!r}。Malformed URL: {url!r}.") from error
        if parsed.scheme not in ("http", "https"):
            raise RefusedError(
                f"只支持 http 和 https 网址，拒绝 {parsed.scheme or '(无)'}:。"
                f"Only http and https URLs are allowed, not {parsed.scheme or '(none)'}:."
            )
        host = _ascii_host(parsed)
        if not host:
            raise InvalidInputError(f"网址缺少主机名：{url!r}。The URL has no host: {url!r}.")
        if not _HOSTNAME.match(host) and not _is_ip(host):
            raise InvalidInputError(f"主机名无效：{host!r}。Invalid host name {host!r}.")
        if parsed.userinfo:
            raise RefusedError(
                "网址中不能包含用户名或密码。URLs with a user name or password are not allowed."
            )
        if not self.host_allowed(host):
            allowed = ", ".join(sorted(self.allowed_hosts)) or "(none)"
            raise RefusedError(
                f"不允许访问主机 {parsed.host}。Host {parsed.host!r} is not on the allow-list "
                f"({allowed})."
            )
        return parsed

    async def checked_addresses(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, each checked; the ones to connect to, in order."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await _resolve(host, port)
            except OSError as error:
                raise ToolFailure(
                    f"无法解析域名 {host}。Could not resolve host {host!r}."
                ) from error
            if not addresses:
                raise ToolFailure(f"无法解析域名 {host}。Could not resolve host {host!r}.")
        if not self.allow_private:
            for text in addresses:
                if not _is_public(ipaddress.ip_address(text)):
                    raise RefusedError(
                        f"主机 {host} 解析到内网或本机地址 {text}，已拒绝访问。"
                        f"Host {host!r} resolves to {text}, a loopback, private or reserved "
                        "address; refused."
                    )
        return addresses

    async def fetch(self, url: str) -> dict[str, Any]:
        """GET `url` under this policy (see the module docstring)."""
        try:
            with anyio.fail_after(self.timeout):
                return await self._fetch(url)
        except TimeoutError as error:
            raise ToolFailure(
                f"请求超时（{self.timeout:g} 秒）。The request timed out after {self.timeout:g} s."
            ) from error

    async def _fetch(self, url: str) -> dict[str, Any]:
        headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        async with httpx.AsyncClient(
            timeout=self.timeout, follow_redirects=False, trust_env=False, headers=headers,
            verify=self.verify,
        ) as client:
            target = self.check_url(url)
            origin = _ascii_host(target)
            for _ in range(self.max_redirects + 1):
                host, port = _ascii_host(target), target.port or _port(target)
                addresses = await self.checked_addresses(host, port)
                # the configured headers (an API key, say) go to the first host only: a
                # redirect to another host must not carry them
                extra = self.headers if host == origin else {}
                result, location = await self._get_any(client, target, addresses, extra)
                if location is None:
                    return result
                try:
                    target = self.check_url(target.join(location))
                except (httpx.InvalidURL, ValueError) as error:  # incl. non-ASCII Locations
                    raise ToolFailure(f"重定向地址无效：{location!r}。Bad redirect.") from error
            raise ToolFailure(
                f"重定向次数过多（超过 {self.max_redirects} 次）。"
                f"Too many redirects (more than {self.max_redirects})."
            )

    async def _get_any(
        self, client: httpx.AsyncClient, target: httpx.URL, addresses: list[str],
        extra: Mapping[str, str],
    ) -> tuple[dict[str, Any], str | None]:
        """Try the checked addresses in order until one accepts the connection."""
        failure: httpx.ConnectError | None = None
        for address in addresses:
            try:
                return await self._get(client, target, address, extra)
            except httpx.ConnectError as error:
                failure = error
        raise ToolFailure(
            f"无法连接 {target.host}。Could not connect to {str(target)!r}: {failure}."
        ) from failure

    async def _get(
        self, client: httpx.AsyncClient, target: httpx.URL, address: str,
        extra: Mapping[str, str],
    ) -> tuple[dict[str, Any], str | None]:
        pinned = target.copy_with(host=address)
        extensions = {"sni_hostname": _ascii_host(target)} if target.scheme == "https" else {}
        try:
            async with client.stream(
                "GET", pinned, headers={**extra, "Host": target.netloc.decode("ascii")},
                extensions=extensions,
            ) as response:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    return {}, location
                body, truncated = await self._read(response)
                content_type = response.headers.get("content-type", "")
                charset = response.charset_encoding or "utf-8"
        except httpx.ConnectError:
            raise  # the next address may work
        except httpx.TimeoutException as error:
            raise ToolFailure(
                f"请求超时（{self.timeout:g} 秒）。The request timed out after {self.timeout:g} s."
            ) from error
        except httpx.HTTPError as error:
            raise ToolFailure(
                f"无法访问 {target.host}：{type(error).__name__}。"
                f"Could not fetch {str(target)!r}: {error}."
            ) from error
        result: dict[str, Any] = {
            "url": str(target),
            "status": response.status_code,
            "content_type": content_type,
            "bytes": len(body),
            "truncated": truncated,
        }
        if _is_text(content_type):
            result["text"] = _decode(body, charset, final=not truncated)
        else:
            result["text"] = ""
            result["message"] = (
                f"二进制内容（{content_type}），未显示。Binary content ({content_type}) not shown."
            )
        return result, None

    async def _read(self, response: httpx.Response) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            if size + len(chunk) > self.max_bytes:
                chunks.append(chunk[: self.max_bytes - size])
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks), False


def _ascii_host(url: httpx.URL) -> str:
    """The host as it goes on the wire: IDNA (punycode) for names, no brackets for IPv6."""
    return url.raw_host.decode("ascii", errors="replace")


def _port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return not media or media.startswith("text/") or any(t in media for t in _TEXT_TYPES)


def _decode(body: bytes, charset: str, *, final: bool) -> str:
    try:
        decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # Not final when truncated: a character cut in half at the cap is dropped, not garbled.
    return str(decoder.decode(body, final=final))


def make_http_get(
    allowed_hosts: Iterable[str],
    *,
    timeout: float = 10.0,
    max_bytes: int = 100_000,
    allow_private: bool = False,
    max_redirects: int = 3,
    headers: Mapping[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
    name: str = "http_get",
) -> Tool:
    """Make an `http_get` tool that may fetch only from `allowed_hosts`.

    `timeout` bounds the whole call in seconds, `max_bytes` the body read, `max_redirects`
    the redirects followed (each re-checked). `allow_private=True` permits loopback and
    private addresses. `headers` are sent with every request (e.g. an API key for an
    allowed host). `verify` is an `ssl.SSLContext` trusting your own CA (certificates are
    verified against the host name, never the pinned IP); False turns verification off.
    `name` lets one agent have several differently configured instances.
    """
    if timeout <= 0 or max_bytes <= 0 or max_redirects < 0:
        raise ValueError("timeout and max_bytes must be positive, max_redirects >= 0")
    hosts = frozenset(_normalize_host(h) for h in allowed_hosts if h.strip())
    policy = HttpGetPolicy(
        hosts, timeout, max_bytes, allow_private, max_redirects, dict(headers or {}), verify
    )
    shown = ", ".join(sorted(hosts)) if "*" not in hosts else "any public host"
    example = next((h for h in sorted(hosts) if "*" not in h), "example.com")

    async def http_get(url: str) -> dict[str, Any]:
        return await policy.fetch(url)

    http_get.__doc__ = f"""读取网页或接口（GET）。Fetch a web page or API with HTTP GET.

    Allowed hosts / 允许的主机: {shown}. Returns the status, content type and text (at most
    {max_bytes} bytes; "truncated" says if there was more).

    Args:
        url: 完整网址 / the full http(s) URL, e.g. "https://{example}/".
    """
    # The executor's limit is a little longer, so the clearer message above wins.
    made: Tool = tool(name=name, timeout=timeout + 2)(http_get)
    return made
