"""WSGI entry point: gunicorn -c py_service/gunicorn.conf.py py_service.wsgi:app"""

from py_service.app import create_app

app = create_app()
