"""The admin console (``/admin``, admin role): users, incident revocation with an impact
preview, the audit trail (and its CSV), health.

Every revocation goes through :func:`sjti.server.routes.admin.revoke_selection`, the code
path of ``POST /admin/revocations``: keys, refresh families, the audit row and one event in
one transaction; the console waits for every live node to acknowledge it and says which did.
The preview is the same call with ``dry_run``: the store selects exactly what the real run
would, changing nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import hmac
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse, Response

from ...stores.base import MAX_LISTED_IDS, Cohort
from ..auth import ServicesDep
from ..routes.admin import cohort_size, revoke_selection, start_revocation_job
from ..users import ROLES, get_by_id
from ._queries import (
    PAGE_SIZE,
    AuditFilter,
    UserFilter,
    audit_rows,
    impact,
    search_users,
    user_events,
)
from ._render import render
from ._session import CSRF_FIELD, AdminSession, PageSession, check_csrf, csrf_token
from .useragent import device_label

__all__ = ["router"]

router = APIRouter(prefix="/admin", include_in_schema=False)

CsrfField = Annotated[str, Form(alias=CSRF_FIELD, max_length=128)]
Text = Annotated[str, Form(max_length=64)]
AUDIT_KINDS: Final = ("user", "users", "cohort", "kek_rewrap")
_CSV_ROWS: Final = 10_000
_ID: Final = re.compile(r"^[A-Za-z0-9._@:-]{1,64}$")


def _bad(field: str, why: str) -> HTTPException:
    return HTTPException(400, {"error": "invalid_request", "error_description": f"{field}: {why}"})


def _date(field: str, value: str | None) -> datetime | None:
    """A form's ``YYYY-MM-DD`` as midnight UTC (``None`` when empty)."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise _bad(field, "expected a date, YYYY-MM-DD") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _common(session: PageSession) -> dict[str, Any]:
    return {"user": session.principal.user, "csrf": session.csrf}


def _actor(session: PageSession) -> str:
    return f"admin:{session.principal.user.username}"


QueryText = Annotated[str, Field(max_length=64)]


class UserQuery(BaseModel):
    """The users page's filters (GET form: bookmarkable, no CSRF needed)."""

    q: QueryText = ""
    role: QueryText = ""
    tenant: QueryText = ""
    created_after: QueryText = ""
    created_before: QueryText = ""
    last_login_before: QueryText = ""
    page: Annotated[int, Field(ge=1, le=100_000)] = 1


class AuditQuery(BaseModel):
    """The audit trail's filters (the page and its CSV export)."""

    kind: QueryText = ""
    actor: QueryText = ""
    text: QueryText = ""
    since: QueryText = ""
    page: Annotated[int, Field(ge=1, le=100_000)] = 1


def _pager(path: str, query: BaseModel, page: int, total: int) -> dict[str, Any]:
    """Page numbers and the links to the pages around this one, filters kept."""
    kept = {k: v for k, v in query.model_dump(exclude={"page"}).items() if v}
    pages = max(1, -(-total // PAGE_SIZE))

    def link(n: int) -> str | None:
        return f"{path}?{urlencode({**kept, 'page': n})}" if 1 <= n <= pages else None

    return {
        "total": total,
        "page": page,
        "pages": pages,
        "filters": query.model_dump(),
        "query_string": urlencode(kept),
        "prev_url": link(page - 1),
        "next_url": link(page + 1),
    }


@router.get("", response_class=HTMLResponse)
def users_page(
    request: Request,
    session: AdminSession,
    services: ServicesDep,
    query: Annotated[UserQuery, Query()],
) -> HTMLResponse:
    """Search (name or id), filter and page through users."""
    found, total = search_users(
        services.engine,
        UserFilter(
            q=query.q or None,
            role=query.role or None,
            tenant=query.tenant or None,
            created_after=_date("created_after", query.created_after),
            created_before=_date("created_before", query.created_before),
            last_login_before=_date("last_login_before", query.last_login_before),
        ),
        query.page,
    )
    return render(
        request,
        "admin/users.html",
        {
            **_common(session),
            **_pager("/admin", query, query.page, total),
            "users": found,
            "roles": ROLES,
        },
    )


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_page(
    user_id: str, request: Request, session: AdminSession, services: ServicesDep
) -> HTMLResponse:
    """One user: profile, devices, security events, and revoke with a reason."""
    found = get_by_id(services.engine, user_id[:64])
    if found is None:
        raise HTTPException(404, {"error": "not_found", "error_description": "no such user"})
    devices = [
        {"family": f, "label": device_label(f.user_agent)}
        for f in services.refresh.list_for(found.id)
    ]
    return render(
        request,
        "admin/user.html",
        {
            **_common(session),
            "subject": found,
            "devices": devices,
            "events": user_events(services, found.id),
        },
    )


def _result_page(
    request: Request, session: PageSession, out: Any, *, expected: int | None = None
) -> HTMLResponse:
    return render(
        request,
        "admin/result.html",
        {**_common(session), "result": out, "expected": expected},
    )


@router.post("/users/{user_id}/revoke", response_class=HTMLResponse)
def revoke_user(
    user_id: str,
    request: Request,
    session: AdminSession,
    services: ServicesDep,
    csrf: CsrfField = "",
    reason: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    """Revoke one user (keys and every refresh family), with a reason, acknowledged."""
    check_csrf(request, session.cookies, csrf, f"sid:{session.session_id}")
    if not reason.strip():
        raise _bad("reason", "say why (it goes into the audit trail)")
    if get_by_id(services.engine, user_id[:64]) is None:
        raise HTTPException(404, {"error": "not_found", "error_description": "no such user"})
    out = revoke_selection(
        services,
        _actor(session),
        cohort=None,
        user_ids=[user_id],
        reason=reason.strip(),
        dry_run=False,
        wait=True,
    )
    return _result_page(request, session, out)


@dataclass(frozen=True, slots=True)
class Selection:
    """An incident's cohort as typed in the form (echoed into the confirm form)."""

    tenant: str
    role: str
    created_before: str
    last_login_before: str
    rotated_before: str
    ids: tuple[str, ...]

    def cohort(self) -> tuple[Cohort | None, list[str] | None]:
        """The store's selection: a cohort, or the bare id list (``revoke_many``)."""
        cohort = Cohort(
            user_ids=frozenset(self.ids) if self.ids else None,
            tenant=self.tenant or None,
            role=self.role or None,
            created_before=_date("created_before", self.created_before),
            last_login_before=_date("last_login_before", self.last_login_before),
            rotated_before=_date("rotated_before", self.rotated_before),
        )
        if cohort.is_empty():
            raise _bad("cohort", "give at least one criterion or some user ids")
        if dataclasses.replace(cohort, user_ids=None).is_empty():
            return None, list(self.ids)  # ids alone: revoke exactly those
        return cohort, None

    def hidden(self) -> dict[str, str]:
        return {
            "tenant": self.tenant,
            "role": self.role,
            "created_before": self.created_before,
            "last_login_before": self.last_login_before,
            "rotated_before": self.rotated_before,
            "ids": "\n".join(self.ids),
        }


def preview_token(session: PageSession, selection: Selection, count: int) -> str:
    """What the confirm form carries from its preview: the selection and the count the
    dry run showed, under this session's CSRF secret. The confirm revokes only a selection
    this admin previewed, in this session, and the number typed is the number shown."""
    shown = json.dumps(selection.hidden(), sort_keys=True, separators=(",", ":"))
    return csrf_token(session.csrf_secret, f"incident:{session.session_id}:{count}:{shown}")


def _ids(text: str) -> tuple[str, ...]:
    """User ids pasted or uploaded: separated by white space or commas."""
    ids = [part for part in re.split(r"[\s,;]+", text) if part]
    if len(ids) > MAX_LISTED_IDS:
        raise _bad("ids", f"at most {MAX_LISTED_IDS} ids at once")
    bad = next((i for i in ids if not _ID.match(i)), None)
    if bad is not None:
        raise _bad("ids", "an id has characters no user id has")
    return tuple(dict.fromkeys(ids))


def _selection(
    tenant: str,
    role: str,
    created_before: str,
    last_login_before: str,
    rotated_before: str,
    ids: str,
) -> Selection:
    if role and role not in ROLES:
        raise _bad("role", f"one of {', '.join(ROLES)}")
    return Selection(
        tenant.strip(),
        role,
        created_before,
        last_login_before,
        rotated_before,
        _ids(ids),
    )


def _run(
    services: Any, session: PageSession, selection: Selection, *, reason: str | None, dry: bool
) -> Any:
    cohort, user_ids = selection.cohort()
    return revoke_selection(
        services,
        _actor(session),
        cohort=cohort,
        user_ids=user_ids,
        reason=reason,
        dry_run=dry,
        wait=not dry,
    )


@router.get("/incident", response_class=HTMLResponse)
def incident_form(request: Request, session: AdminSession) -> HTMLResponse:
    return render(request, "admin/incident.html", {**_common(session), "roles": ROLES})


@router.post("/incident/preview", response_class=HTMLResponse)
def incident_preview(
    request: Request,
    session: AdminSession,
    services: ServicesDep,
    csrf: CsrfField = "",
    tenant: Text = "",
    role: Text = "",
    created_before: Text = "",
    last_login_before: Text = "",
    rotated_before: Text = "",
    ids: Annotated[str, Form(max_length=800_000)] = "",
    ids_file: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """The dry run: how many, a sample, the breakdown by tenant and role."""
    check_csrf(request, session.cookies, csrf, f"sid:{session.session_id}")
    uploaded = ""
    if ids_file is not None and ids_file.filename:
        try:
            # A spreadsheet's "CSV UTF-8" starts with a byte order mark: not part of an id.
            uploaded = ids_file.file.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _bad("ids_file", "expected a UTF-8 text file of user ids") from None
    selection = _selection(
        tenant, role, created_before, last_login_before, rotated_before, f"{ids}\n{uploaded}"
    )
    out = _run(services, session, selection, reason=None, dry=True)
    return render(
        request,
        "admin/preview.html",
        {
            **_common(session),
            "result": out,
            "impact": impact(services.engine, out.user_ids),
            "hidden": selection.hidden(),
            "preview_token": preview_token(session, selection, out.count),
        },
    )


@router.post("/incident/confirm", response_class=HTMLResponse)
def incident_confirm(
    request: Request,
    session: AdminSession,
    services: ServicesDep,
    csrf: CsrfField = "",
    tenant: Text = "",
    role: Text = "",
    created_before: Text = "",
    last_login_before: Text = "",
    rotated_before: Text = "",
    ids: Annotated[str, Form(max_length=800_000)] = "",
    expected: Annotated[int, Form(ge=0)] = 0,
    preview: Annotated[str, Form(max_length=128)] = "",
    confirm: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    """The revocation itself, once the admin typed a reason and the number previewed: only
    the selection this session's preview showed (``preview``), with that number."""
    check_csrf(request, session.cookies, csrf, f"sid:{session.session_id}")
    if not reason.strip():
        raise _bad("reason", "say why (it goes into the audit trail)")
    selection = _selection(tenant, role, created_before, last_login_before, rotated_before, ids)
    if expected < 1 or not hmac.compare_digest(
        preview.encode(), preview_token(session, selection, expected).encode()
    ):
        raise _bad("preview", "confirm a selection from its impact preview; preview it again")
    if confirm.strip() != str(expected):
        raise _bad("confirm", "type the number of users the preview showed")
    cohort, _ = selection.cohort()
    if (
        cohort is not None
        and cohort.user_ids is None
        and (cohort_size(services, cohort) > MAX_LISTED_IDS)
    ):
        # More than one transaction should hold: the API's batched job, every worker sees it.
        job = start_revocation_job(
            request, services, cohort, actor=_actor(session), reason=reason.strip()
        )
        return render(request, "admin/job.html", {**_common(session), "job": job})
    out = _run(services, session, selection, reason=reason.strip(), dry=False)
    return _result_page(request, session, out, expected=expected)


def _audit_filter(query: AuditQuery) -> AuditFilter:
    return AuditFilter(
        kind=query.kind or None,
        actor=query.actor or None,
        text=query.text or None,
        since=_date("since", query.since),
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: AdminSession,
    services: ServicesDep,
    query: Annotated[AuditQuery, Query()],
) -> HTMLResponse:
    """Every revocation: when, who, why, what, how many; filtered and paged."""
    rows, total = audit_rows(
        services,
        _audit_filter(query),
        limit=PAGE_SIZE,
        offset=(query.page - 1) * PAGE_SIZE,
    )
    return render(
        request,
        "admin/audit.html",
        {
            **_common(session),
            **_pager("/admin/audit", query, query.page, total),
            "rows": rows,
            "kinds": AUDIT_KINDS,
        },
    )


def csv_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: a leading ``= + - @`` (or tab, CR) would make
    it a formula (CSV injection), so such cells get a leading apostrophe."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/audit.csv")
def audit_csv(
    _session: AdminSession, services: ServicesDep, query: Annotated[AuditQuery, Query()]
) -> Response:
    """The filtered audit trail as CSV (at most 10,000 rows, newest first)."""
    rows, _ = audit_rows(services, _audit_filter(query), limit=_CSV_ROWS)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at", "actor", "reason", "kind", "count", "detail"])
    for r in rows:
        writer.writerow(
            [
                csv_cell(v)
                for v in (r.id, r.at.isoformat(), r.actor, r.reason, r.kind, r.count, r.detail)
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="sjti-audit.csv"',
            "Cache-Control": "no-store",
        },
    )


def _health(services: Any) -> dict[str, Any]:
    stats = services.keys.stats()
    looked = stats.hits + stats.negative_hits + stats.misses + stats.bypasses
    bus = services.bus
    ring = services.material.kek_ring
    keks = [
        {
            "kid": kek.kid,
            "primary": i == 0,
            "under": None if i == 0 else services.store.rewrap_pending(kek.kid),
        }
        for i, kek in enumerate(ring.keks)
    ]
    return {
        "bus_kind": None if bus is None else bus.name.partition(":")[0],
        "bus_state": stats.bus_state,
        "trusted": stats.trusted,
        "hit_rate": None if looked == 0 else (stats.hits + stats.negative_hits) / looked,
        "stats": stats,
        "watermark": None if bus is None else bus.watermark,
        "node": None if bus is None else bus.node_id,
        "latest_event": services.store.latest_event_id(),
        "nodes": services.store.live_nodes(),
        "keks": keks,
        "database": services.database_ok(),
        "problem": services.problem,
        "granularity": services.settings.session_granularity,
    }


@router.get("/health", response_class=HTMLResponse)
def health_page(request: Request, session: AdminSession, services: ServicesDep) -> HTMLResponse:
    """Bus, cache trust and hit rate, live nodes and their lag, KEK ids in use."""
    return render(request, "admin/health.html", {**_common(session), **_health(services)})
