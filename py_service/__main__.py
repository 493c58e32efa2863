"""`python -m py_service [gunicorn options]`: serve the app under gunicorn with its config file.

gunicorn runs in this interpreter rather than as a child process, so it sees the
same import path however this module was started (venv, Bazel runfiles, image).
"""

import sys
from pathlib import Path

from gunicorn.app.wsgiapp import run

GUNICORN_CONFIG = Path(__file__).with_name("gunicorn.conf.py")


def main() -> None:
    sys.argv = ["gunicorn", "-c", str(GUNICORN_CONFIG), *sys.argv[1:], "py_service.wsgi:app"]
    run()


if __name__ == "__main__":
    main()
