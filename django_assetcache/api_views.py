"""The deploy API's views (docs/deploy-api.md): JSON in and out, a bearer
token on every request, no CSRF (no cookie is read), no caching.

They are project URLs (``django_assetcache.urls``), so they never answer on
a site host: the middleware answers those before a URL is resolved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import IO, Any, cast

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from .deployapi import (
    ApiError,
    deploy_zip,
    deployable_site,
    finish_deploy,
    pending_deploy,
    receive_blob,
    start_deploy,
)
from .deployments import DeploymentError, describe, history, rollback
from .deploytokens import authenticate
from .models import Deployment, DeployToken, PendingDeploy

ApiView = Callable[..., HttpResponse]

#: The largest JSON body read: a manifest of some 200,000 files.
MAX_JSON_BODY = 32 * 1024 * 1024


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="assetcache deploy"'
    return response


def api(*methods: str) -> Callable[[Callable[..., Any]], ApiView]:
    """A view of the API: the method checked, the token authenticated (the
    view gets it), an ApiError answered as JSON with its status."""

    def decorate(view: Callable[..., Any]) -> ApiView:
        @csrf_exempt
        @never_cache
        @wraps(view)
        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                refused = _error(405, f"use {' or '.join(methods)}")
                refused["Allow"] = ", ".join(methods)
                return refused
            scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
            token = authenticate(secret.strip()) if scheme.lower() == "bearer" else None
            if token is None:
                return _error(401, "a valid deploy token is required (Authorization: Bearer <token>)")
            try:
                result = view(request, token, **kwargs)
            except ApiError as exc:
                return _error(exc.status, str(exc), **exc.extra)
            return result if isinstance(result, HttpResponse) else JsonResponse(result)

        return wrapper

    return decorate


def _json_body(request: HttpRequest) -> Any:
    """The request's JSON, read here with the API's own limit: Django's
    ``request.body`` would refuse a large site's manifest past
    DATA_UPLOAD_MAX_MEMORY_SIZE with an HTML page."""
    if request.content_type != "application/json":
        raise ApiError(415, "send Content-Type: application/json")
    raw = request.read(MAX_JSON_BODY + 1)
    if len(raw) > MAX_JSON_BODY:
        raise ApiError(413, f"the JSON body is over {MAX_JSON_BODY // (1024 * 1024)} MiB")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:  # RecursionError: [[[[…]]]] nested past the stack
        raise ApiError(400, f"the body is not JSON: {exc}") from exc
    if not _storable(body):
        raise ApiError(400, "a string of the body has a NUL or a lone surrogate (\\u0000, \\ud800)")
    return body


def _storable(body: Any) -> bool:
    """Whether every string of ``body`` can be stored: JSON may escape a NUL
    or half a surrogate pair, which no database column takes."""
    pending = [body]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def _uploading(pending: PendingDeploy) -> dict[str, Any]:
    return {
        "id": pending.key,
        "site": pending.subdomain,
        "state": "uploading",
        "required": pending.required,
        "expires_at": pending.expires_at.isoformat(),
    }


def _finished(pending: PendingDeploy | None, deployment: Deployment, summary: dict[str, Any]) -> dict[str, Any]:
    """A finished deploy (``pending`` None: a zip deploy, which had no upload phase)."""
    return {
        "id": deployment.key,
        "upload": pending.key if pending else None,
        "state": deployment.state,
        "url": deployment.site.url,
        "preview_url": deployment.preview_url(),
        "summary": summary,
    }


@api("GET", "POST")
def site_deploys(request: HttpRequest, token: DeployToken, subdomain: str) -> Any:
    if request.method == "GET":
        site = deployable_site(token, subdomain)
        if site is None:
            raise ApiError(404, f"no such site: {subdomain}")
        try:
            return {"deploys": [describe(deployment) for deployment in history(site)]}
        except DeploymentError as exc:
            raise ApiError(404, str(exc)) from exc
    if request.content_type == "application/zip":
        query = {name: str(value) for name, value in request.GET.items()}
        if not _storable(query):
            raise ApiError(400, "a query value has a NUL or a lone surrogate")
        summary = deploy_zip(token, subdomain, cast(IO[bytes], request), _content_length(request), query)
        assert summary.deployment is not None  # publish makes one (record_unchanged)
        return JsonResponse(_finished(None, summary.deployment, summary.as_json()), status=201)
    pending, skipped = start_deploy(token, subdomain, _json_body(request))
    return JsonResponse({**_uploading(pending), "skipped": skipped}, status=201)


def _content_length(request: HttpRequest) -> int | None:
    length_header = request.META.get("CONTENT_LENGTH") or ""
    # ASCII digits only: str.isdigit() is true of "²", which int() refuses.
    return int(length_header) if length_header.isascii() and length_header.isdigit() else None


@api("PUT")
def blob(request: HttpRequest, token: DeployToken, key: str, sha256: str) -> Any:
    length = _content_length(request)
    # HttpRequest reads its body as a file does, in chunks: never whole in memory.
    stored = receive_blob(token, key, sha256, cast(IO[bytes], request), length)
    return JsonResponse({"sha256": sha256, "stored": stored}, status=201 if stored else 200)


@api("POST")
def finish(request: HttpRequest, token: DeployToken, key: str) -> Any:
    pending, summary = finish_deploy(token, key)
    assert pending.deployment is not None  # finish_deploy sets it
    return _finished(pending, pending.deployment, summary)


@api("GET")
def deploy(request: HttpRequest, token: DeployToken, key: str) -> Any:
    found = Deployment.objects.select_related("site").filter(key=key).first()
    if found is not None:
        deployable_site(token, found.site.subdomain)
        return describe(found)
    pending = pending_deploy(token, key)
    if pending.deployment is not None:
        return _finished(pending, pending.deployment, pending.deployment.summary)
    return _uploading(pending)


@api("POST")
def site_rollback(request: HttpRequest, token: DeployToken, subdomain: str) -> Any:
    site = deployable_site(token, subdomain)
    if site is None:
        raise ApiError(404, f"no such site: {subdomain}")
    body = _json_body(request) if request.content_type == "application/json" or _content_length(request) else {}
    target = body.get("id") if isinstance(body, dict) else None
    if target is not None and not isinstance(target, str):
        raise ApiError(400, '"id" is a deployment id')
    if target and not site.deployments.filter(key=target.strip().lower()).exists():
        raise ApiError(404, f"{site.subdomain} has no deployment {target}")
    try:
        made_live = rollback(site, target or None)
    except DeploymentError as exc:
        raise ApiError(409, str(exc)) from exc
    return describe(made_live)
