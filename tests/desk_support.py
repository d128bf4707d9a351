"""Desk accounts for tests: create a manager, log in through the real form, get an API token."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.conftest import local
from web import auth

PASSWORD = "correct horse battery"


def add_manager(session: Session, username: str, *, district: str | None = None) -> None:
    role = "district" if district else "city"
    auth.add_user(
        session,
        username=username,
        password=PASSWORD,
        role=role,
        district=district,
        display_name=username,
        at=local("2026-01-01T09:00"),
    )


def api_headers(session: Session, username: str, *, district: str | None = None) -> dict[str, str]:
    add_manager(session, username, district=district)
    user = auth.find_user(session, username)
    assert user is not None
    return {"Authorization": f"Bearer {auth.new_api_token(session, user)}"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def log_in(client: TestClient, session: Session, username: str, *, district: str | None = None) -> str:
    """Create the manager, log in through the form, and return the CSRF token for the forms that follow."""
    add_manager(session, username, district=district)
    form = client.get("/desk/login")
    response = client.post(
        "/desk/login",
        data={"username": username, "password": PASSWORD, "csrf": csrf_of(form.text), "next": "/desk/items"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(form.text)
