"""The operator console, served at /console (docs/api.md §12): its pages and its actions."""

from __future__ import annotations

from fastapi import APIRouter

from app.console import actions, pages
from app.console.web import PREFIX

router = APIRouter(include_in_schema=False)
router.include_router(actions.router, prefix=PREFIX)
router.include_router(pages.router, prefix=PREFIX)
