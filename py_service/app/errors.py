"""Plain-text error responses in place of Flask's HTML error pages."""

from __future__ import annotations

from flask import Flask, Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from py_service.app.routes import text_response

# Werkzeug would list the matched rule's methods in no fixed order; every route
# allows exactly these, in the order the contract spells them.
ALLOW = "GET, HEAD"


def register_error_handlers(app: Flask) -> None:
    # Flask picks handlers along the exception's class hierarchy, so this one
    # also answers the InternalServerError that wraps unhandled exceptions.
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = text_response(f"{status} {error.name}", status=status)
        if isinstance(error, MethodNotAllowed):
            response.headers["Allow"] = ALLOW
        return response
