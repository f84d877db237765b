"""The storage's lifecycle in the app (the flaskr ``db`` module): one storage object per
app, request-scoped resources released at the end of every request, ``get_storage()``
for views."""
from __future__ import annotations

from flask import Flask, current_app

from ..storage import Storage, open_storage


def get_storage() -> Storage:
    return current_app.extensions["lever.storage"]


def init_app(app: Flask) -> Storage:
    storage = open_storage(app.config["DATABASE_URL"], app.config)
    app.extensions["lever.storage"] = storage

    @app.teardown_appcontext
    def release_storage(_exception: BaseException | None) -> None:
        storage.release()

    return storage
