"""The one place where `k8s-agent-sandbox`, Kubernetes client and HTTP exceptions become the sandbox taxonomy.

Messages name the warm pool, the namespace and what to check, because the person reading them is usually an
operator looking at a misconfigured or unhealthy cluster.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import aiohttp
import httpx
import kubernetes.client.exceptions
import kubernetes_asyncio.client.exceptions
from k8s_agent_sandbox.exceptions import (
    SandboxClaimFailedError,
    SandboxError,
    SandboxMetadataError,
    SandboxNotFoundError,
    SandboxPortForwardError,
    SandboxRequestError,
    SandboxTemplateNotFoundError,
    SandboxWarmPoolNotFoundError,
)

from ... import errors
from .config import KubernetesConfig

API_EXCEPTIONS = (kubernetes_asyncio.client.exceptions.ApiException, kubernetes.client.exceptions.ApiException)


@contextlib.contextmanager
def translated(config: KubernetesConfig, action: str, sandbox_id: str | None = None) -> Iterator[None]:
    """Raise the taxonomy's error for whatever the clients raise while doing `action` (e.g. "run a command")."""
    where = config.where()
    subject = f"sandbox {sandbox_id}" if sandbox_id else "the sandbox"
    try:
        yield
    except errors.SandboxError:
        raise
    except SandboxWarmPoolNotFoundError as error:
        raise errors.BackendUnavailableError(
            f"Could not {action}: the {where} does not exist ({error}). Check --warm-pool and --namespace against "
            f"`kubectl get sandboxwarmpools -n {config.namespace}`."
        ) from error
    except SandboxTemplateNotFoundError as error:
        raise errors.BackendUnavailableError(
            f"Could not {action}: the SandboxTemplate behind the {where} does not exist ({error}). Check the pool's "
            f"spec.sandboxTemplateRef with `kubectl get sandboxtemplates -n {config.namespace}`."
        ) from error
    except SandboxClaimFailedError as error:
        raise errors.BackendUnavailableError(
            f"Could not {action}: the agent-sandbox controller gave up on the claim from the {where} ({error}). "
            "Check the claim's conditions and the pods of the pool."
        ) from error
    except (SandboxMetadataError, SandboxNotFoundError) as error:
        raise errors.SandboxGoneError(
            f"Could not {action}: {subject} no longer exists in namespace {config.namespace!r} ({error}); "
            "it was terminated or expired. Create a new sandbox."
        ) from error
    except SandboxPortForwardError as error:
        raise errors.BackendUnavailableError(
            f"Could not {action}: the kubectl tunnel to the sandbox-router failed ({error}). Check that "
            "`kubectl` works and the router Service `sandbox-router-svc` exists."
        ) from error
    except SandboxRequestError as error:
        raise _request_error(config, action, subject, error) from error
    except API_EXCEPTIONS as error:
        raise _api_error(config, action, error) from error
    except TimeoutError as error:
        raise errors.TimedOutError(
            f"Could not {action} in time: no answer from the cluster, or no ready sandbox from the {where} "
            f"({error or 'deadline reached'}). Check the pool's ready replicas (`kubectl get sandboxwarmpool "
            f"{config.warm_pool} -n {config.namespace}`), the agent-sandbox controller and the API server."
        ) from error
    except (aiohttp.ClientError, httpx.HTTPError, OSError) as error:
        raise errors.BackendUnavailableError(
            f"Could not {action}: the Kubernetes API or the sandbox-router is unreachable "
            f"({type(error).__name__}: {error}). Check the kubeconfig's server and --api-url."
        ) from error
    except SandboxError as error:
        raise errors.BackendUnavailableError(f"Could not {action} in the {where}: {error}") from error
    except RuntimeError as error:
        if "exceeds limit" in str(error):
            raise errors.TooLargeError(f"Could not {action}: {error} Read the file in parts.") from error
        raise errors.BackendUnavailableError(f"Could not {action}: the runtime answered badly ({error}).") from error


def _request_error(
    config: KubernetesConfig, action: str, subject: str, error: SandboxRequestError
) -> errors.SandboxError:
    status = error.status_code
    if status == 404:
        return errors.NotFoundError(f"Could not {action}: not found in {subject}.")
    if status == 403:
        return errors.PermissionDeniedError(f"Could not {action}: the runtime of {subject} denied access.")
    if status == 504 or (status is None and isinstance(error.__cause__, httpx.TimeoutException)):
        return errors.TimedOutError(
            f"Could not {action}: {subject} did not answer in time (the sandbox-router timed out or the runtime is "
            f"slow). Check the pod's load; the router's proxy timeout is {config.proxy_timeout:g} s."
        )
    if status == 502:
        return errors.BackendUnavailableError(
            f"Could not {action}: the sandbox-router could not reach the pod of {subject} (HTTP 502). Check the pod "
            f"in namespace {config.namespace!r} and the network policy between router and pods."
        )
    if status in (401, 407):
        return errors.BackendUnavailableError(
            f"Could not {action}: the sandbox-router refused our credentials (HTTP {status}). Check its auth setup."
        )
    detail = f"HTTP {status}" if status is not None else f"no answer: {error.__cause__ or error}"
    return errors.BackendUnavailableError(
        f"Could not {action}: the runtime of {subject} failed ({detail}). Check the pod and the sandbox-router."
    )


def _status_message(error: Exception) -> str:
    """The `message` of the API server's Status answer, bounded; empty when the body is not one."""
    try:
        answer = json.loads(getattr(error, "body", None) or "{}")
    except (TypeError, ValueError):
        return ""
    message = answer.get("message") if isinstance(answer, dict) else None
    return message[:500] if isinstance(message, str) else ""


def _api_error(config: KubernetesConfig, action: str, error: Exception) -> errors.SandboxError:
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", "") or ""
    if status == 404:
        return errors.NotFoundError(f"Could not {action}: not found in namespace {config.namespace!r} ({reason}).")
    refusal = _status_message(error)
    if status == 403 and "exceeded quota" in refusal:
        # A ResourceQuota refused the claim (403 like a denial by RBAC, which it is not).
        return errors.QuotaExceededError(
            f"Could not {action}: the namespace's quota is used up ({refusal}). Close sandboxes that are no longer "
            "needed, or ask for a larger ResourceQuota."
        )
    if status in (401, 403):
        return errors.BackendUnavailableError(
            f"Could not {action}: the Kubernetes API refused access (HTTP {status} {reason}). Check the kubeconfig's "
            f"user and its RBAC: create/get/list/watch/patch/delete on sandboxclaims and get on sandboxes in "
            f"namespace {config.namespace!r}."
        )
    if status == 429:
        return errors.QuotaExceededError(f"Could not {action}: the Kubernetes API is throttling requests (HTTP 429).")
    return errors.BackendUnavailableError(
        f"Could not {action}: the Kubernetes API answered HTTP {status} {reason}. Check the API server's health "
        "and that the agent-sandbox CRDs are installed."
    )
