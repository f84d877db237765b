"""The web room: everything that knows about HTTP.

* ``factory``      ``create_app``: settings, storage, services, blueprints
* ``db``           the storage's lifecycle in the app (``get_storage``)
* ``http``         request helpers: JSON body, limits, request info, CORS origin check
* ``public_api``   assign and reward (public, CORS, rate-limited)
* ``public_calls`` assign, reward and events from request bytes to (status, body): shared by
                   the Flask views and the fast path
* ``fast_path``    the public calls served by a plain WSGI callable in front of Flask
* ``admin_api``    experiments, stats, policy, exports, visitors (admin token)
* ``report``       the report pages (session login, CSRF, strict CSP)
* ``snippet``      ``/lever.js`` and ``/demo``
* ``openapi``      the OpenAPI document
* ``auth`` / ``session_auth`` / ``limits`` / ``errors``  who may call, how often, how failures render
* ``cli`` / ``console``  ``flask --app app …`` commands and the ``lever`` script

May import: ``app.service``, ``app.reporting``, ``app.domain``, ``app.storage`` (records
and errors), ``app.settings``. Views parse, call the service, render.
"""
