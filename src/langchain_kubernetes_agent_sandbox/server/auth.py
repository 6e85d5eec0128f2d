"""Who may call over HTTP: bearer tokens from configuration, and optionally JWTs verified against a JWKS.

Each accepted credential names a principal, the owner of sessions. Static tokens are compared by their
SHA-256 digest, so the lookup's timing says nothing about how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier

from .config import ENV_PREFIX, ConfigError, ServerConfig

logger = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def parse_tokens(text: str, source: str) -> dict[str, str]:
    """'TOKEN PRINCIPAL' pairs, one per line (or separated by commas); '#' starts a comment."""
    table: dict[str, str] = {}
    entries = [part for line in text.splitlines() for part in line.split("#", 1)[0].split(",")]
    for number, entry in enumerate(entries, start=1):
        fields = entry.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ConfigError(f"{source}, entry {number}: expected 'TOKEN PRINCIPAL', got {len(fields)} fields")
        token, principal = fields
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"{source}, entry {number}: the token for {principal} is shorter than {MIN_TOKEN_CHARS} characters; "
                "use a long random one (e.g. `openssl rand -hex 32`)"
            )
        table[token] = principal
    return table


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenTable(TokenVerifier):
    """Static bearer tokens, each standing for one principal."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._principals = {_digest(token): principal for token, principal in tokens.items()}

    def __len__(self) -> int:
        return len(self._principals)

    async def verify_token(self, token: str) -> AccessToken | None:
        principal = self._principals.get(_digest(token))
        if principal is None:
            return None
        return AccessToken(token=token, client_id=principal, subject=principal, scopes=[])


class JwksVerifier(TokenVerifier):
    """JWTs signed by a key the JWKS publishes; the principal is one of their claims."""

    def __init__(
        self, jwks_url: str, *, issuer: str | None, audience: str | None, principal_claim: str = "sub"
    ) -> None:
        self._keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300)
        self._issuer = issuer
        self._audience = audience
        self._claim = principal_claim

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            key = await anyio.to_thread.run_sync(self._keys.get_signing_key_from_jwt, token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(JWT_ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError as error:
            logger.info("rejected a JWT: %s", error)
            return None
        principal = claims.get(self._claim)
        if not isinstance(principal, str) or not principal:
            logger.info("rejected a JWT without a string %r claim", self._claim)
            return None
        scope = claims.get("scope")
        return AccessToken(
            token=token,
            client_id=principal,
            subject=principal,
            scopes=scope.split() if isinstance(scope, str) else [],
            expires_at=int(claims["exp"]),
            claims=claims,
        )


class FirstAccepting(TokenVerifier):
    """Asks each verifier in turn; the first that accepts the token decides the principal."""

    def __init__(self, verifiers: Sequence[TokenVerifier]) -> None:
        self._verifiers = tuple(verifiers)

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self._verifiers:
            accepted = await verifier.verify_token(token)
            if accepted is not None:
                return accepted
        return None


def build_verifier(config: ServerConfig) -> TokenVerifier | None:
    """The verifier the configuration asks for, or None when HTTP runs unauthenticated (or over stdio)."""
    tokens: dict[str, str] = {}
    if config.token_file is not None:
        try:
            text = Path(config.token_file).read_text()
        except OSError as error:
            raise ConfigError(f"setting token_file: cannot read {config.token_file}: {error.strerror}") from None
        tokens.update(parse_tokens(text, str(config.token_file)))
    if config.tokens:
        tokens.update(parse_tokens(config.tokens, f"${ENV_PREFIX}TOKENS"))
    verifiers: list[TokenVerifier] = []
    if tokens:
        verifiers.append(TokenTable(tokens))
    elif config.token_file is not None or config.tokens:
        raise ConfigError("the configured tokens are empty: add at least one 'TOKEN PRINCIPAL' line")
    if config.jwks_url:
        verifiers.append(
            JwksVerifier(
                config.jwks_url,
                issuer=config.jwt_issuer,
                audience=config.jwt_audience,
                principal_claim=config.jwt_principal_claim,
            )
        )
    if not verifiers:
        return None
    return verifiers[0] if len(verifiers) == 1 else FirstAccepting(verifiers)
