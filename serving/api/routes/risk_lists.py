"""The daily risk list `retain daily` publishes, and the campaign results `retain results`
publishes beside it, for marketing."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from serving.api.deps import MarketingCaller, RiskListsDep, audited
from serving.api.errors import ApiError
from serving.api.schemas import AUTHENTICATED, error_responses
from serving.results import RESULTS_FILE

router = APIRouter(prefix="/risk-list", tags=["marketing"])
Day = Annotated[date | None, Query(alias="date", description="The list's day (default: latest).")]
Format = Annotated[Literal["html", "csv"], Query(alias="format")]


def published_day(folder: Path, day: date | None) -> str:
    """The list's folder name: `day`, or the latest; 404 naming the days that exist."""
    published = sorted(p.name for p in folder.glob("????-??-??") if (p / "report.html").exists())
    if not published:
        raise ApiError(404, "no_risk_list", "no risk list yet: run `retain daily`")
    wanted = day.isoformat() if day else published[-1]
    if wanted not in published:
        raise ApiError(
            404,
            "no_risk_list",
            f"no risk list for {wanted}; lists exist for {', '.join(published[-7:])}"
            + (" (latest 7)" if len(published) > 7 else ""),
        )
    return wanted


@router.get(
    "",
    response_class=Response,  # the page or CSV; errors in the API's JSON shape
    responses={
        200: {
            "content": {"text/html": {}, "text/csv": {}},
            "description": "The report page, or the list as CSV.",
        },
        **error_responses(*AUTHENTICATED, 404, 422),
    },
)
def risk_list(
    request: Request,
    _: MarketingCaller,
    folder: RiskListsDep,
    day: Day = None,
    kind: Format = "html",
) -> Response:
    """The daily risk list: the report page, or the list as CSV (`?format=csv`)."""
    wanted = published_day(folder, day)
    audited(request, [None])  # the whole list: every listed customer
    if kind == "csv":
        return stream_file(
            folder / wanted / "risk_list.csv",
            "text/csv",
            {"Content-Disposition": f'attachment; filename="risk_list_{wanted}.csv"'},
        )
    return stream_file(folder / wanted / "report.html", "text/html; charset=utf-8")


def stream_file(path: Path, media_type: str, headers: dict[str, str] | None = None) -> Response:
    """A published file, opened once through its link (a re-publication may swap the link
    and remove the old version while it streams: an open file is read whole regardless)."""
    handle = open(os.path.realpath(path), "rb")  # noqa: SIM115  # closed after streaming
    return StreamingResponse(
        iter(lambda: handle.read(1 << 16), b""),
        media_type=media_type,
        headers=headers or {},
        background=BackgroundTask(handle.close),
    )


results_router = APIRouter(prefix="/campaign-results", tags=["marketing"])


@results_router.get(
    "",
    response_class=Response,
    responses={
        200: {"content": {"text/html": {}}, "description": "The campaign results page."},
        **error_responses(*AUTHENTICATED, 404),
    },
)
def campaign_results(request: Request, _: MarketingCaller, folder: RiskListsDep) -> Response:
    """Treated against control by action, segment and month (`retain results`'s page)."""
    page = folder / RESULTS_FILE
    if not page.exists():
        raise ApiError(
            404,
            "no_campaign_results",
            "no campaign results yet: run `retain attribute` and `retain results`",
        )
    audited(request, [None])
    return stream_file(page, "text/html; charset=utf-8")
