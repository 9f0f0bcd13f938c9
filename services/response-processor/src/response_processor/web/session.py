"""Signing in to the console (`authkit.web`: the API's login, a server-side session) and
one's own password change, which is the API's and is forced at first sign-in."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template

from authkit.guards import PASSWORD_CHANGE_PENDING_OPT
from authkit.web import PASSWORD_PROBLEMS, WebSignIn
from response_processor.api.auth import PasswordIn, change_own_password
from response_processor.web.render import render
from servicekit.errors import ApiError
from servicekit.web import flash, see_other
from servicekit.web.forms import decode_form, field_errors, form_fields


def password_controller(sign_in: WebSignIn) -> type[Controller]:
    """``/password``: one's own password change, open while a change is due."""

    class PasswordPages(Controller):
        """Change one's password."""

        path = sign_in.password_path
        opt = dict(PASSWORD_CHANGE_PENDING_OPT)  # noqa: RUF012 - Litestar's own attribute

        @get("/")
        async def form(self, request: Request[Any, Any, Any]) -> Template:
            """The password form (the only page open while a change is due)."""
            return render(request, "password.html", errors={})

        @post("/")
        async def change(self, request: Request[Any, Any, Any]) -> Template | Redirect:
            """The API's password change; then a new session with the new password."""
            fields = await form_fields(request)
            current, new = fields.get("current_password", ""), fields.get("new_password", "")
            if new != fields.get("confirm_password", ""):
                errors = {"confirm_password": "The two new passwords differ."}
                return render(request, "password.html", 400, errors=errors)
            try:
                decode_form({"current_password": current, "new_password": new}, PasswordIn)
                changed = await change_own_password(request, current, new)
            except ApiError as exc:
                errors = field_errors(exc, PASSWORD_PROBLEMS)
                if "password" in errors:
                    errors["new_password"] = errors.pop("password")
                return render(request, "password.html", exc.status_code, errors=errors)
            # The change ended every session, this one too: sign in again with the new one.
            await sign_in.log_in_again(request, changed.username, new)
            flash(request, "Your password has been changed.", "success")
            return see_other(f"{sign_in.web.prefix}/")

    return PasswordPages
