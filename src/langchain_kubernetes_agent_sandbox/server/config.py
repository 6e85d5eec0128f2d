"""Server settings from flags, environment variables and an optional TOML file, validated once at start.

Precedence: flag, then environment variable, then file, then default. Every setting is declared once in
`SETTINGS`, which drives `serve --help`, the environment variable names and the file keys alike, so the three
cannot drift apart; its default is `ServerConfig`'s, which takes it from the dataclass that owns the number
(`ToolLimits`, `SessionPolicy`, the providers' limits), so help texts and descriptions say the same.
A bad value stops the server with a message naming the setting and where it came from.
"""

from __future__ import annotations

import getpass
import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..network.policy import EgressPolicy
from ..network.settings import operator_policy
from ..providers.kubernetes.config import AGENT_PORT
from ..providers.local.limits import ResourceLimits
from ..sessions import SessionPolicy
from .previews.table import PreviewLimits
from .tool_limits import ToolLimits

ENV_PREFIX = "KUBERNETES_AGENT_SANDBOX_"
_LOCAL = ResourceLimits()
_POLICY = SessionPolicy()
_TOOLS = ToolLimits()
_PREVIEWS = PreviewLimits()
_MIB = 1024 * 1024
CONFIG_ENV = ENV_PREFIX + "CONFIG"


class ConfigError(Exception):
    """A setting is missing, malformed or contradicts another; the message names it."""


@dataclass(frozen=True)
class Setting:
    name: str
    help: str
    kind: Literal["str", "int", "float", "bool", "list"] = "str"
    choices: tuple[str, ...] = ()
    flag: bool = True
    """Secrets (tokens) get no flag: a command line is visible to every user of the machine."""
    default_of: Callable[[], object] | None = None
    """Where the default of a setting that `ServerConfig` leaves unset (None) comes from: the provider's own,
    looked up only when the default is shown (the Kubernetes provider is slow to import)."""

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def default(self) -> object:
        """The value the server uses when nothing sets this one (None: none)."""
        if self.default_of is not None:
            return self.default_of()
        field = ServerConfig.model_fields[self.name]
        return None if field.default_factory is not None else field.default

    @property
    def described(self) -> str:
        """The help text with the default, as `serve --help` and the README show it."""
        default = self.default
        if default is None or isinstance(default, bool) or default == ():
            return self.help
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        shown = ",".join(str(item) for item in default) if isinstance(default, tuple) else shown
        shown = f'"{shown}"' if isinstance(default, str) else shown
        text = self.help.removesuffix(".")
        return f"{text} (default {shown}){'.' if text != self.help else ''}"


def _kubernetes_default(name: str) -> Callable[[], object]:
    def default() -> object:
        from ..providers.kubernetes import KubernetesConfig

        return KubernetesConfig.__dataclass_fields__[name].default

    return default


def _max_connections() -> object:
    from .connections import DEFAULT_MAX_CONNECTIONS

    return DEFAULT_MAX_CONNECTIONS


SETTINGS: tuple[Setting, ...] = (
    Setting("transport", "stdio for desktop clients, http for streamable HTTP at /mcp.", choices=("stdio", "http")),
    Setting("host", "Address the HTTP server binds."),
    Setting("port", "Port the HTTP server binds.", "int"),
    Setting("stateless", "Serve HTTP in stateless mode: no MCP session ids, so replicas need no affinity.", "bool"),
    Setting("json_response", "Answer HTTP requests with JSON instead of SSE streams (drops progress/logs).", "bool"),
    Setting("public_url", "The URL clients reach /mcp at, advertised in the OAuth resource metadata."),
    Setting("allowed_hosts", "Extra Host header values to accept, comma-separated (e.g. mcp.example.com:443).", "list"),
    Setting(
        "allowed_origins", "Extra Origin values to accept, comma-separated (e.g. https://app.example.com).", "list"
    ),
    Setting(
        "max_connections",
        "Most HTTP connections open at once (at most a quarter of the open-file limit); at the ceiling the "
        "connection that has waited on its client longest is closed.",
        "int",
        default_of=_max_connections,
    ),
    Setting("header_timeout", "Seconds a client has to send a request's head, from its first byte.", "float"),
    Setting(
        "keep_alive_timeout",
        "Seconds an HTTP connection may sit without a request before it is closed; behind a load balancer, more "
        "than its idle timeout.",
        "float",
    ),
    Setting("token_file", "File of bearer tokens, one 'TOKEN PRINCIPAL' pair per line ('#' starts a comment)."),
    Setting("tokens", "Bearer tokens as in --token-file, pairs separated by newlines or commas.", flag=False),
    Setting("jwks_url", "Also accept JWTs signed by a key from this JWKS URL."),
    Setting("jwt_issuer", "Required 'iss' of accepted JWTs."),
    Setting("jwt_audience", "Required 'aud' of accepted JWTs."),
    Setting("jwt_principal_claim", "JWT claim that names the principal."),
    Setting(
        "allow_unauthenticated",
        "Serve HTTP without authentication; refused unless bound to loopback, and with --allow-network locally.",
        "bool",
    ),
    Setting("principal", "The principal owning sessions over stdio and unauthenticated HTTP (default: OS user)."),
    Setting("provider", "Where sandboxes run.", choices=("local", "kubernetes")),
    Setting("state_dir", "Local provider: folder holding the sandboxes (default: a per-user state folder)."),
    Setting("unisolated", "Local provider: run without bubblewrap, for trusted machines only.", "bool"),
    Setting(
        "cpu_limit",
        "Local provider: CPUs one sandbox may use at most, all its processes together.",
        "float",
        default_of=lambda: _LOCAL.cpus,
    ),
    Setting(
        "disk_quota_mib",
        "Local provider: MiB one sandbox's /app and /tmp may hold together; needs a root server with loop "
        "devices, applies to sandboxes created afterwards.",
        "int",
        default_of=lambda: _LOCAL.disk_bytes // _MIB,
    ),
    Setting(
        "disk_quota_files",
        "Local provider: files and folders one sandbox may hold.",
        "int",
        default_of=lambda: _LOCAL.disk_files,
    ),
    Setting(
        "namespace", "Kubernetes provider: namespace of the SandboxClaims.", default_of=_kubernetes_default("namespace")
    ),
    Setting("warm_pool", "Kubernetes provider: SandboxWarmPool (or template) to claim sandboxes from."),
    Setting(
        "connection",
        "Kubernetes provider: how to reach the sandbox pods.",
        choices=("direct", "gateway", "in-cluster", "tunnel"),
        default_of=_kubernetes_default("connection"),
    ),
    Setting("api_url", "Kubernetes provider: URL of the sandbox router, for the direct connection."),
    Setting("gateway_name", "Kubernetes provider: Gateway to reach sandboxes through."),
    Setting(
        "gateway_namespace",
        "Kubernetes provider: namespace of that Gateway.",
        default_of=_kubernetes_default("gateway_namespace"),
    ),
    Setting("kubeconfig", "Kubernetes provider: kubeconfig file (default: in-cluster account, then $KUBECONFIG)."),
    Setting(
        "router_timeout",
        "Kubernetes provider: the sandbox-router's proxy timeout in seconds; longer runs are refused.",
        "float",
        default_of=_kubernetes_default("proxy_timeout"),
    ),
    Setting(
        "agent_port",
        "Kubernetes provider: pod port of the execution engine's agent; 0 sends every command as a one-shot "
        "request to the runtime.",
        "int",
    ),
    # sandboxd as a runtime (issue 14): the pool's pods speak sandboxd's gRPC and REST instead of python-runtime.
    Setting(
        "runtime",
        "Kubernetes provider: what the warm pool's pods run: the python-runtime protocol, or sandboxd (then "
        "connection must be in-cluster or tunnel: the router cannot carry its gRPC).",
        choices=("reference", "sandboxd"),
        default_of=_kubernetes_default("runtime"),
    ),
    Setting(
        "sandboxd_address",
        "Kubernetes provider: for sandboxd in-cluster, reach the pod's address or its Service (the template "
        "needs `service: true`).",
        choices=("pod-ip", "service"),
        default_of=_kubernetes_default("sandboxd_address"),
    ),
    Setting(
        "sandboxd_rest_port",
        "Kubernetes provider: pod port of sandboxd's REST file API.",
        "int",
        default_of=_kubernetes_default("sandboxd_rest_port"),
    ),
    Setting(
        "sandboxd_grpc_port",
        "Kubernetes provider: pod port of sandboxd's gRPC ProcessService.",
        "int",
        default_of=_kubernetes_default("sandboxd_grpc_port"),
    ),
    Setting(
        "ready_timeout",
        "Kubernetes provider: seconds a claim may wait for a ready pod.",
        "float",
        default_of=_kubernetes_default("ready_timeout"),
    ),
    Setting(
        "api_timeout",
        "Kubernetes provider: seconds one Kubernetes API request may take.",
        "float",
        default_of=_kubernetes_default("api_timeout"),
    ),
    Setting(
        "file_timeout",
        "Kubernetes provider: seconds one file transfer may take.",
        "float",
        default_of=_kubernetes_default("file_timeout"),
    ),
    Setting("idle_timeout", "Seconds an unused session lives.", "float"),
    Setting("max_idle_timeout", "Largest idle timeout create_session may ask for.", "float"),
    Setting("max_lifetime", "Seconds after creation when every session ends.", "float"),
    Setting("max_sessions", "Sessions one principal may hold.", "int"),
    Setting("max_concurrent_runs", "Tool calls one principal may run at once.", "int"),
    Setting("max_fork_mib", "Largest workspace (/app) fork_session copies, in MiB.", "int"),
    Setting("allow_network", "Let create_session(network=...) give sandboxes egress, within egress_allow.", "bool"),
    # Egress (issue 13): the operator's allow-list, enforced by the host-side proxy (network/).
    Setting(
        "egress_allow",
        "Names sandboxes may connect to, comma-separated: `*.example.test`, `example.test`, `*`, optionally `:port`.",
        "list",
    ),
    Setting("egress_ports", "Ports of egress_allow rules that name none.", "list"),
    Setting(
        "egress_pool",
        "Kubernetes provider: warm pool that serves sessions with network (its template's NetworkPolicy allows "
        "egress only through the cluster's allow-list proxy).",
    ),
    Setting(
        "egress_private",
        "Rules from egress_allow whose names may resolve to loopback, link-local, private or metadata addresses.",
        "list",
    ),
    Setting("reap_interval", "Seconds between sweeps for expired sessions (and idle ones to suspend).", "float"),
    # Suspend and resume (issue 16)
    Setting(
        "suspend_idle",
        "Suspend an idle session (processes stop, files stay; the next call resumes it) where the provider keeps "
        "its files, rather than ending it; its maximum lifetime ends it either way.",
        "bool",
    ),
    Setting("resume_timeout", "Seconds a call on a suspended session waits for its sandbox to start again.", "float"),
    Setting(
        "suspend_pools",
        "Kubernetes provider: warm pools whose template keeps /app on a volume (volumeClaimTemplates), so that "
        "their idle sessions are suspended (Sandbox operatingMode Suspended) rather than deleted; comma-separated.",
        "list",
    ),
    Setting("default_timeout", "Seconds a command may run when the call names no timeout.", "float"),
    Setting("max_timeout", "Largest timeout a call may ask for.", "float"),
    Setting(
        "detach_after",
        "Seconds execute and execute_python wait before a still-running command becomes a job.",
        "float",
    ),
    Setting(
        "max_output_bytes",
        "Bytes of stdout and of stderr a call keeps unless it asks for more.",
        "int",
    ),
    Setting(
        "max_call_output_bytes",
        "Most bytes of stdout and of stderr one call may ask to keep.",
        "int",
    ),
    Setting(
        "max_transfer_bytes",
        "Largest piece of a file one upload_file or download_file call moves; larger files move in pieces.",
        "int",
    ),
    # Previews (issue 16): what a server in a sandbox may send through a preview URL.
    Setting(
        "preview_max_bytes",
        "Bytes one response through a preview URL (or one WebSocket, from the sandbox) may carry; a larger one is cut.",
        "int",
    ),
    Setting(
        "preview_max_seconds",
        "Seconds one HTTP exchange through a preview URL may last, until its response's last byte; a longer one is "
        "cut.",
        "float",
    ),
    Setting("log_level", "Logging level.", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}


def settings_table() -> str:
    """Every setting as a Markdown table (flag, environment variable, what it does with its default): the
    README's configuration section is this text."""
    rows = ["| flag | environment variable | setting |", "|---|---|---|"]
    for setting in SETTINGS:
        flag = f"`{setting.option}`" if setting.flag else "(none: a secret)"
        described = setting.described.replace("|", "\\|")
        rows.append(f"| {flag} | `{setting.env}` | {described} |")
    return "\n".join(rows) + "\n"


class ServerConfig(BaseModel):
    """Every setting of the server, with its default; `load` fills it from the outside world."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    stateless: bool = False
    json_response: bool = False
    public_url: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_connections: int | None = Field(None, ge=1)
    header_timeout: float = Field(10.0, gt=0)
    keep_alive_timeout: float = Field(30.0, gt=0)
    token_file: Path | None = None
    tokens: str | None = None
    jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_principal_claim: str = "sub"
    allow_unauthenticated: bool = False
    principal: str = Field(default_factory=getpass.getuser, min_length=1)
    provider: Literal["local", "kubernetes"] = "local"
    state_dir: Path | None = None
    unisolated: bool = False
    cpu_limit: float | None = Field(None, ge=0.01, le=1024)
    disk_quota_mib: int | None = Field(None, ge=16)
    disk_quota_files: int | None = Field(None, ge=1024)
    namespace: str | None = None
    warm_pool: str | None = None
    connection: Literal["direct", "gateway", "in-cluster", "tunnel"] | None = None
    api_url: str | None = None
    gateway_name: str | None = None
    gateway_namespace: str | None = None
    kubeconfig: str | None = None
    router_timeout: float | None = Field(None, gt=0)
    agent_port: int = Field(AGENT_PORT, ge=0, le=65535)
    runtime: Literal["reference", "sandboxd"] | None = None
    sandboxd_address: Literal["pod-ip", "service"] | None = None
    sandboxd_rest_port: int | None = Field(None, ge=1, le=65535)
    sandboxd_grpc_port: int | None = Field(None, ge=1, le=65535)
    ready_timeout: float | None = Field(None, gt=0)
    api_timeout: float | None = Field(None, gt=0)
    file_timeout: float | None = Field(None, gt=0)
    idle_timeout: float = Field(_TOOLS.idle_timeout, gt=0)
    max_idle_timeout: float = Field(_TOOLS.max_idle_timeout, gt=0)
    max_lifetime: float = Field(_POLICY.max_lifetime, gt=0)
    max_sessions: int = Field(_POLICY.max_sessions, ge=1)
    max_concurrent_runs: int = Field(_POLICY.max_concurrent_runs, ge=1)
    max_fork_mib: int = Field(_POLICY.max_fork_bytes // _MIB, ge=1)
    allow_network: bool = False
    egress_allow: tuple[str, ...] = ()
    egress_ports: tuple[int, ...] = (80, 443)
    egress_private: tuple[str, ...] = ()
    egress_pool: str | None = None
    reap_interval: float = Field(_POLICY.reap_interval, gt=0)
    suspend_idle: bool = _POLICY.suspend_idle
    resume_timeout: float = Field(_POLICY.resume_timeout, gt=0)
    suspend_pools: tuple[str, ...] = ()
    default_timeout: float = Field(_TOOLS.default_timeout, gt=0)
    max_timeout: float = Field(_TOOLS.max_timeout, gt=0)
    detach_after: float = Field(_TOOLS.detach_after, ge=0, le=170)
    max_output_bytes: int = Field(_TOOLS.output_bytes, ge=64)
    max_call_output_bytes: int = Field(_TOOLS.max_call_output_bytes, ge=64, le=64 * 1024 * 1024)
    max_transfer_bytes: int = Field(_TOOLS.max_transfer_bytes, ge=1024, le=64 * 1024 * 1024)
    preview_max_bytes: int = Field(_PREVIEWS.max_response_bytes, ge=1024)
    preview_max_seconds: float = Field(_PREVIEWS.max_response_seconds, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def has_auth(self) -> bool:
        return bool(self.token_file or self.tokens or self.jwks_url)

    @property
    def egress(self) -> EgressPolicy | None:
        """The operator's egress policy, or None when sandboxes get no egress."""
        if not self.allow_network:
            return None
        return operator_policy(self.egress_allow, self.egress_ports, self.egress_private)

    def _check_egress(self) -> None:
        if self.allow_network and self.provider == "local" and not self.egress_allow:
            raise ValueError(
                "allow_network needs an allow-list: give egress_allow (for instance `*.pkgs.example.test`, or `*` "
                "for every public name), or drop allow_network"
            )
        if self.allow_network and self.provider == "kubernetes" and not self.egress_pool:
            raise ValueError(
                "allow_network on Kubernetes needs egress_pool: the warm pool whose template allows egress through "
                "the cluster's allow-list proxy (see docs/kubernetes.md), or drop allow_network"
            )
        operator_policy(self.egress_allow, self.egress_ports, self.egress_private)
        if self.allow_unauthenticated and self.allow_network and self.egress_private and self.provider == "local":
            raise ValueError(
                "refusing --allow-unauthenticated together with egress_private: names allowed to resolve to "
                "private addresses may lead to this machine's loopback, so code in a sandbox could call this server "
                f"without a token and reach every session. Give --token-file, {ENV_PREFIX}TOKENS or --jwks-url "
                "instead of --allow-unauthenticated, or drop egress_private"
            )

    @model_validator(mode="after")
    def _consistent(self) -> ServerConfig:
        if self.idle_timeout > self.max_idle_timeout:
            raise ValueError("idle_timeout must not exceed max_idle_timeout")
        if self.default_timeout > self.max_timeout:
            raise ValueError("default_timeout must not exceed max_timeout")
        if self.max_output_bytes > self.max_call_output_bytes:
            raise ValueError("max_output_bytes must not exceed max_call_output_bytes")
        if self.transport == "http" and not self.has_auth:
            if not self.loopback:
                raise ValueError(
                    f"refusing to serve HTTP on {self.host} without authentication: give --token-file, "
                    f"{ENV_PREFIX}TOKENS or --jwks-url (unauthenticated HTTP is only allowed on loopback)"
                )
            if not self.allow_unauthenticated:
                raise ValueError(
                    "HTTP needs authentication: give --token-file, "
                    f"{ENV_PREFIX}TOKENS or --jwks-url, or pass --allow-unauthenticated to serve loopback "
                    "without it"
                )
        if self.allow_unauthenticated and not self.loopback:
            raise ValueError(f"allow_unauthenticated is only allowed on loopback, not on host {self.host}")
        self._check_egress()
        if (self.jwt_issuer or self.jwt_audience) and not self.jwks_url:
            raise ValueError("jwt_issuer and jwt_audience need jwks_url")
        return self


def load(flags: Mapping[str, Any], environ: Mapping[str, str], config_file: str | None = None) -> ServerConfig:
    """Merge file, environment and flags (given only when set), then validate."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = config_file or environ.get(CONFIG_ENV)
    if path:
        for name, value in _read_file(Path(path)).items():
            values[name], sources[name] = value, f"{path}: {name}"
    for setting in SETTINGS:
        if setting.env in environ:
            values[setting.name] = _parse(setting, environ[setting.env], f"${setting.env}")
            sources[setting.name] = f"${setting.env}"
    for name, value in flags.items():
        if value is not None:
            values[name], sources[name] = value, BY_NAME[name].option
    try:
        return ServerConfig.model_validate(values)
    except ValidationError as error:
        raise ConfigError(_describe(error, sources)) from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read the configuration file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"the configuration file {path} is not valid TOML: {error}") from None
    values = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} in {path}; known settings: {', '.join(sorted(BY_NAME))}")
    return {
        name: _parse(BY_NAME[name], value, str(path)) if isinstance(value, str) else value
        for name, value in values.items()
    }


def _parse(setting: Setting, raw: str, source: str) -> Any:
    """Text from the environment or a file, as the setting's type; pydantic checks ranges afterwards."""
    if setting.kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"setting {setting.name} ({source}): expected true or false, got {raw!r}")
    if setting.kind == "list":
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return raw


def _describe(error: ValidationError, sources: Mapping[str, str]) -> str:
    problems = []
    for problem in error.errors(include_url=False):
        name = str(problem["loc"][0]) if problem["loc"] else ""
        if name in BY_NAME:
            where = sources.get(name, "default")
            problems.append(f"setting {name} ({where}): {problem['msg']}, got {problem.get('input')!r}")
        else:
            problems.append(str(problem["msg"]).removeprefix("Value error, "))
    return "invalid configuration: " + "; ".join(problems)
