"""Streamable HTTP: authentication, principals from tokens, stateless mode, Host/Origin checks, health."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from tests.server.http_serving import http_server, mcp_client
from tests.server.mcp_calls import call, fail
from tests.server.test_bad_input import SwitchableProvider

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef00"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def http_settings(make_config: Callable[..., ServerConfig], tmp_path: Path) -> Callable[..., ServerConfig]:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"# token principal\n{ALICE} alice\n{BOB} bob\n")

    def make(**settings: Any) -> ServerConfig:
        return make_config(transport="http", token_file=tokens, **settings)

    return make


async def test_requests_without_a_valid_token_get_401_and_health_needs_none(
    http_settings: Callable[..., ServerConfig],
) -> None:
    async with http_server(http_settings()) as url, httpx.AsyncClient() as http:
        assert (await http.post(f"{url}/mcp", json=INIT, headers=MCP_HEADERS)).status_code == 401
        wrong = await http.post(f"{url}/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "invalid_token" in wrong.headers["www-authenticate"]
        good = await http.post(f"{url}/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": f"Bearer {ALICE}"})
        assert good.status_code == 200
        assert (await http.get(f"{url}/healthz")).json() == {"status": "ok"}
        assert (await http.get(f"{url}/readyz")).json() == {"status": "ready", "provider": "local"}


async def test_sessions_belong_to_the_tokens_principal(http_settings: Callable[..., ServerConfig]) -> None:
    async with http_server(http_settings()) as url:
        async with mcp_client(url, ALICE) as alice:
            created = await call(alice, "create_session")
            session_id = created.structuredContent["session_id"]  # type: ignore[index]
            await call(alice, "upload_file", path="a.txt", content="alice", session_id=session_id)
        async with mcp_client(url, BOB) as bob:
            assert (await fail(bob, "execute", command="cat a.txt", session_id=session_id)).startswith("not_found:")
            assert (await call(bob, "list_sessions")).structuredContent == {"sessions": []}
        async with mcp_client(url, ALICE) as alice_again:
            listed = (await call(alice_again, "list_sessions")).structuredContent["sessions"]  # type: ignore[index]
            assert [entry["session_id"] for entry in listed] == [session_id]


@pytest.mark.parametrize("json_response", [False, True])
async def test_stateless_mode_keeps_files_in_the_principals_default_session(
    http_settings: Callable[..., ServerConfig], json_response: bool
) -> None:
    async with http_server(http_settings(stateless=True, json_response=json_response)) as url:
        async with mcp_client(url, ALICE) as first:
            await call(first, "execute_python", code="open('state.txt', 'w').write('kept')")
        async with mcp_client(url, ALICE) as second:
            result = await call(second, "download_file", path="state.txt")
            assert result.structuredContent["content"] == "kept"  # type: ignore[index]


async def test_a_restarted_server_finds_the_session_again(http_settings: Callable[..., ServerConfig]) -> None:
    async with http_server(http_settings()) as url, mcp_client(url, ALICE) as client:
        session_id = (await call(client, "create_session")).structuredContent["session_id"]  # type: ignore[index]
        await call(client, "upload_file", path="f.txt", content="before restart", session_id=session_id)
    async with http_server(http_settings()) as url, mcp_client(url, ALICE) as client:
        result = await call(client, "download_file", path="f.txt", session_id=session_id)
        assert result.structuredContent["content"] == "before restart"  # type: ignore[index]


async def test_host_and_origin_checks_stay_on_and_accept_configured_names(
    http_settings: Callable[..., ServerConfig],
) -> None:
    authorized = {**MCP_HEADERS, "Authorization": f"Bearer {ALICE}"}
    settings = http_settings(allowed_hosts=("mcp.example.com",), allowed_origins=("https://app.example.com",))
    async with http_server(settings) as url, httpx.AsyncClient() as http:
        evil_host = await http.post(f"{url}/mcp", json=INIT, headers={**authorized, "Host": "evil.example"})
        assert evil_host.status_code == 421
        good_host = await http.post(f"{url}/mcp", json=INIT, headers={**authorized, "Host": "mcp.example.com"})
        assert good_host.status_code == 200
        evil_origin = await http.post(f"{url}/mcp", json=INIT, headers={**authorized, "Origin": "https://evil.example"})
        assert evil_origin.status_code == 403
        good_origin = {**authorized, "Origin": "https://app.example.com"}
        assert (await http.post(f"{url}/mcp", json=INIT, headers=good_origin)).status_code == 200


async def test_readiness_fails_while_the_provider_is_unreachable(
    http_settings: Callable[..., ServerConfig], local_state_dir: Path
) -> None:
    provider = SwitchableProvider(LocalProvider(local_state_dir))
    async with http_server(http_settings(), provider) as url, httpx.AsyncClient() as http:
        provider.down = True
        ready = await http.get(f"{url}/readyz")
        assert ready.status_code == 503
        assert "did not answer" in ready.json()["reason"]
        assert (await http.get(f"{url}/healthz")).status_code == 200


class Jwks:
    """An identity provider's signing key, with its JWKS published on a loopback port."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, subject: str, *, lifetime: float = 300, key: Any = None, audience: str = "sandbox") -> str:
        claims = {"sub": subject, "iss": "https://id.example", "aud": audience, "exp": int(time.time() + lifetime)}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    published = Jwks()
    yield published
    published.server.shutdown()


async def test_jwts_signed_by_the_jwks_are_accepted_and_name_the_principal(
    make_config: Callable[..., ServerConfig], jwks: Jwks
) -> None:
    config = make_config(transport="http", jwks_url=jwks.url, jwt_issuer="https://id.example", jwt_audience="sandbox")
    async with http_server(config) as url:
        async with mcp_client(url, jwks.token("carol")) as carol:
            await call(carol, "upload_file", path="c.txt", content="carol's")
        async with mcp_client(url, jwks.token("carol")) as carol_again:
            assert (await call(carol_again, "download_file", path="c.txt")).structuredContent["content"] == "carol's"  # type: ignore[index]
        forged = jwks.token("carol", key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
        async with httpx.AsyncClient() as http:
            for bad in (jwks.token("carol", lifetime=-60), forged, jwks.token("carol", audience="other")):
                response = await http.post(
                    f"{url}/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": f"Bearer {bad}"}
                )
                assert response.status_code == 401
