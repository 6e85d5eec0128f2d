"""From a `ServerConfig` to a running server: the provider, the session registry and its reaper, the MCP
app with auth and health routes, and the transport."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import uvicorn
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidArgumentError, SandboxError
from ..limits import ExecutionLimits
from ..output import OutputLimit
from ..providers.local.limits import ResourceLimits
from ..sandbox import SandboxProvider
from ..sessions import SessionPolicy, SessionRegistry
from .app import SandboxMCP
from .auth import build_verifier
from .config import ConfigError, ServerConfig
from .connections import ConnectionLimits, connection_limits, guarded_protocol, open_file_limit
from .logs import quiet_ended_session_streams
from .metrics import CONTENT_TYPE, MeasuredProvider, ServerMetrics
from .previews import PreviewLimits
from .previews.upstream import MAX_WEBSOCKET_MESSAGE as PREVIEW_WEBSOCKET_MESSAGE
from .tool_limits import ToolLimits

if TYPE_CHECKING:
    from ..providers.kubernetes import KubernetesConfig

logger = logging.getLogger(__name__)

READINESS_TIMEOUT = 5.0
BACKLOG = 2048
"""uvicorn's listen backlog, lowered to max_connections when that is smaller."""
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


def make_provider(config: ServerConfig) -> SandboxProvider:
    """The provider the configuration names; a missing prerequisite raises `BackendUnavailableError`.

    On Kubernetes the default run timeout stays within what the router lets through.
    """
    limits = ExecutionLimits(
        default_timeout=config.default_timeout,
        max_timeout=config.max_timeout,
        output=OutputLimit(max_bytes=config.max_call_output_bytes),
    )
    if config.provider == "local":
        from ..providers.local import LocalProvider

        return LocalProvider(
            config.state_dir,
            limits=limits,
            resources=local_resources(config),
            unisolated=config.unisolated,
            egress=config.egress,
        )
    from ..providers.kubernetes import KubernetesProvider

    cluster = kubernetes_config(config)
    kubernetes = KubernetesProvider(cluster)
    kubernetes.limits = dataclasses.replace(
        kubernetes.limits,
        default_timeout=min(kubernetes.limits.default_timeout, config.default_timeout),
        max_timeout=config.max_timeout,
        output=limits.output,
    )
    return kubernetes


def local_resources(config: ServerConfig) -> ResourceLimits:
    """The local provider's resource limits: the operator's settings over `ResourceLimits`' defaults."""
    chosen: dict[str, Any] = {}
    if config.cpu_limit is not None:
        chosen["cpus"] = config.cpu_limit
    if config.disk_quota_mib is not None:
        chosen["disk_bytes"] = config.disk_quota_mib * 1024 * 1024
    if config.disk_quota_files is not None:
        chosen["disk_files"] = config.disk_quota_files
    return ResourceLimits(**chosen)


def kubernetes_config(config: ServerConfig, **defaults: Any) -> KubernetesConfig:
    """The Kubernetes provider's settings from the server's (`defaults` for those the operator left unset); a bad
    one is a `ConfigError` that names it."""
    from ..providers.kubernetes import ConnectionMode, KubernetesConfig

    timeouts = {
        "proxy_timeout": config.router_timeout,
        "ready_timeout": config.ready_timeout,
        "api_timeout": config.api_timeout,
        "file_timeout": config.file_timeout,
    }
    chosen = {**defaults, **{name: value for name, value in timeouts.items() if value is not None}}
    chosen.update(sandboxd_settings(config))
    try:
        return KubernetesConfig(
            warm_pool=config.warm_pool or "",
            namespace=config.namespace or "default",
            connection=ConnectionMode(config.connection or "direct"),
            api_url=config.api_url,
            gateway_name=config.gateway_name,
            gateway_namespace=config.gateway_namespace or "default",
            kubeconfig=config.kubeconfig,
            max_lifetime=config.max_lifetime,
            agent_port=config.agent_port or None,
            egress_pool=config.egress_pool,
            suspend_pools=config.suspend_pools,
            **chosen,
        )
    except InvalidArgumentError as error:
        raise ConfigError(f"kubernetes provider: {error}") from None


def sandboxd_settings(config: ServerConfig) -> dict[str, Any]:
    """The Kubernetes provider's runtime settings the operator gave (`KubernetesConfig` has the defaults)."""
    from ..providers.kubernetes.config import RuntimeKind, SandboxdAddress

    chosen: dict[str, Any] = {}
    if config.runtime is not None:
        chosen["runtime"] = RuntimeKind(config.runtime)
    if config.sandboxd_address is not None:
        chosen["sandboxd_address"] = SandboxdAddress(config.sandboxd_address)
    for name in ("sandboxd_rest_port", "sandboxd_grpc_port"):
        if getattr(config, name) is not None:
            chosen[name] = getattr(config, name)
    return chosen


def session_policy(config: ServerConfig) -> SessionPolicy:
    return SessionPolicy(
        idle_timeout=config.idle_timeout,
        max_idle_timeout=config.max_idle_timeout,
        max_lifetime=config.max_lifetime,
        max_sessions=config.max_sessions,
        max_concurrent_runs=config.max_concurrent_runs,
        allow_network=config.allow_network,
        egress=config.egress,
        reap_interval=config.reap_interval,
        max_fork_bytes=config.max_fork_mib * 1024 * 1024,
        suspend_idle=config.suspend_idle,
        resume_timeout=config.resume_timeout,
    )


def transport_security(config: ServerConfig) -> TransportSecuritySettings:
    """The SDK's Host and Origin checks, on unless the operator lists '*' as an allowed host."""
    if "*" in config.allowed_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = [*LOOPBACK_HOSTS, *config.allowed_hosts]
    if not config.loopback and config.host not in ("0.0.0.0", "::"):
        hosts.append(f"{config.host}:*")
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=[*LOOPBACK_ORIGINS, *config.allowed_origins])


def tool_limits(config: ServerConfig, registry: SessionRegistry) -> ToolLimits:
    """What the tools bound and say: the server's settings, and the timeouts the provider really applies (on
    Kubernetes the default may be shortened to what the router lets through)."""
    provider = registry.provider.inner if isinstance(registry.provider, MeasuredProvider) else registry.provider
    execution = getattr(provider, "limits", None)
    applied: dict[str, Any] = {"default_timeout": config.default_timeout, "max_timeout": config.max_timeout}
    if isinstance(execution, ExecutionLimits):
        applied = {name: getattr(execution, name) for name in ("default_timeout", "max_timeout", "max_list_entries")}
    return ToolLimits(
        max_transfer_bytes=config.max_transfer_bytes,
        output_bytes=config.max_output_bytes,
        max_call_output_bytes=config.max_call_output_bytes,
        detach_after=config.detach_after,
        idle_timeout=registry.policy.idle_timeout,
        max_idle_timeout=registry.policy.max_idle_timeout,
        **applied,
    )


def preview_limits(config: ServerConfig) -> PreviewLimits:
    return PreviewLimits(
        max_response_bytes=config.preview_max_bytes,
        max_response_seconds=config.preview_max_seconds,
    )


def public_base(config: ServerConfig) -> str:
    """Where clients reach this server's listener: `public_url` without its /mcp, else the bound address."""
    if config.public_url:
        return config.public_url.rstrip("/").removesuffix("/mcp")
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{config.port}"


def build_server(config: ServerConfig, registry: SessionRegistry) -> SandboxMCP:
    """The MCP server for `registry`, with authentication and health routes as configured."""
    metrics = ServerMetrics()
    if not isinstance(registry.provider, MeasuredProvider):
        registry.provider = MeasuredProvider(registry.provider, metrics)
    else:
        metrics = registry.provider.metrics
    verifier = build_verifier(config)
    base = config.public_url or f"http://{config.host}:{config.port}/mcp"
    auth = None
    if verifier is not None:
        auth = AuthSettings(
            issuer_url=AnyHttpUrl(config.jwt_issuer or base),
            resource_server_url=AnyHttpUrl(base),
            validate_token_resource=False,
        )
    mcp = SandboxMCP(
        registry,
        local_principal=config.principal,
        limits=tool_limits(config, registry),
        token_verifier=verifier,
        auth=auth,
        transport_security=transport_security(config),
        stateless_http=config.stateless,
        json_response=config.json_response,
        host=config.host,
        port=config.port,
        metrics=metrics,
        preview_limits=preview_limits(config),
    )

    async def healthz(request: Request) -> JSONResponse:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the provider answers, so tool calls can work."""
        try:
            await asyncio.wait_for(registry.provider.check(), READINESS_TIMEOUT)
        except (SandboxError, TimeoutError) as error:
            reason = str(error) or f"the provider did not answer within {READINESS_TIMEOUT:g} s"
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ready", "provider": registry.provider.name})

    async def metrics_text(request: Request) -> Response:
        """Prometheus metrics in the text format."""
        return Response(await metrics.render(registry.provider), media_type=CONTENT_TYPE)

    mcp.custom_route("/healthz", methods=["GET"])(healthz)
    mcp.custom_route("/metrics", methods=["GET"])(metrics_text)
    mcp.custom_route("/readyz", methods=["GET"])(readyz)
    return mcp


@contextlib.asynccontextmanager
async def running(config: ServerConfig, provider: SandboxProvider | None = None) -> AsyncIterator[SandboxMCP]:
    """A checked provider, a registry whose reaper runs in the background, and the MCP server on top."""
    provider = provider or make_provider(config)
    try:
        await provider.check()
        registry = SessionRegistry(provider, session_policy(config))
        mcp = build_server(config, registry)
        reaper = asyncio.create_task(registry.reap_forever())
        try:
            yield mcp
        finally:
            await mcp.previews.aclose()
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
    finally:
        await provider.aclose()


async def serve(config: ServerConfig, sockets: Sequence[socket.socket] | None = None) -> None:
    """Serve until stopped, on the configured transport."""
    limits = connection_limits(config, open_file_limit()) if config.transport == "http" else None
    async with running(config) as mcp:
        if limits is None:
            await mcp.run_stdio_async()
            return
        if not config.has_auth:
            logger.warning("serving HTTP WITHOUT authentication on %s (loopback only)", config.host)
        server = uvicorn.Server(http_config(mcp, config, limits))
        await server.serve(sockets=list(sockets) if sockets else None)


def http_config(mcp: SandboxMCP, config: ServerConfig, limits: ConnectionLimits | None = None) -> uvicorn.Config:
    """uvicorn serving the MCP app with bounded connections (`limits`, else those `config` asks for)."""
    limits = limits or connection_limits(config, open_file_limit())
    quiet_ended_session_streams()
    mcp.serve_previews(public_base(config))
    return uvicorn.Config(
        mcp.streamable_http_app(),
        host=config.host,
        port=config.port,
        log_level=config.log_level.lower(),
        lifespan="on",
        access_log=False,
        http=guarded_protocol(limits),
        ws="websockets-sansio",  # previews relay WebSockets; an upgraded connection leaves the guard's count
        ws_max_size=PREVIEW_WEBSOCKET_MESSAGE,
        backlog=min(BACKLOG, limits.max_connections),  # what one turn of the event loop may accept
    )
