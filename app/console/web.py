"""Pages as the console answers them: rendered from Jinja2 templates with every value escaped, under
a strict Content-Security-Policy, never framed, never cached; and its one stylesheet."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from app.console.charts import DASH, number

PREFIX = "/console"

# No script at all; styles from our one stylesheet only (the charts' colours are classes in it);
# forms post only to this service; no page may frame a console page.
POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

STYLESHEET = resources.files("app.console").joinpath("static/console.css").read_bytes()
STYLESHEET_VERSION = hashlib.sha256(STYLESHEET).hexdigest()[:12]
STYLESHEET_URL = f"{PREFIX}/static/console.css?v={STYLESHEET_VERSION}"


def when(value: datetime | None) -> Markup:
    """A date for people, in UTC, in a `<time>` that carries it exactly."""
    if value is None:
        return escape(DASH)
    moment = value.astimezone(UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        moment.isoformat().replace("+00:00", "Z"), moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def ago(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 129_600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def path_part(value: object) -> str:
    """A value placed in a URL's path: every reserved character escaped."""
    return quote(str(value), safe="")


# Built once, as configuration: autoescape everywhere (every value shown is untrusted), undefined
# names fail loudly instead of rendering empty.
TEMPLATES = Environment(
    loader=PackageLoader("app.console", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(when=when, ago=ago, path_part=path_part)
TEMPLATES.globals.update(prefix=PREFIX, stylesheet=STYLESHEET_URL, number=number)


def page(
    template: str, status: int = 200, headers: dict[str, str] | None = None, **values: Any
) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(**values)
    return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def redirect(location: str, headers: dict[str, str] | None = None) -> RedirectResponse:
    """303: the browser follows with a GET (after a form's POST too)."""
    response = RedirectResponse(location, status_code=303)
    for name, value in {**PAGE_HEADERS, **(headers or {})}.items():
        response.headers[name] = value
    return response


def stylesheet() -> Response:
    return Response(
        STYLESHEET,
        media_type="text/css",
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )
