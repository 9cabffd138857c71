"""Log format for the app's own loggers (uvicorn configures its own)."""

import logging

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    app_logger = logging.getLogger("app")
    if app_logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    app_logger.addHandler(handler)
    app_logger.setLevel(level)
    app_logger.propagate = False
