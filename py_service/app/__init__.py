"""py_service: a small Flask app whose responses are cached by Nginx or Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from flask import Flask

from py_service.app.cache import build_cache
from py_service.app.config import Config
from py_service.app.errors import register_error_handlers
from py_service.app.metrics import Metrics, instrument
from py_service.app.routes import register_routes


def create_app(config: Config | None = None, *, clock: Callable[[], float] = time.time) -> Flask:
    """Build the app; config defaults to the environment, clock (epoch seconds) to time.time."""
    if config is None:
        config = Config.from_env(os.environ)
    # No static folder: its /static/<path> route would be outside the contract.
    app = Flask(__name__, static_folder=None)
    metrics = Metrics.create(config.prometheus_multiproc_dir)
    register_routes(
        app,
        config=config,
        cache=build_cache(config, clock, metrics),
        clock=clock,
        metrics=metrics,
    )
    register_error_handlers(app)
    instrument(app, metrics)
    return app
