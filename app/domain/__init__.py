"""The domain: records and rules every room shares, framework-free.

* ``errors``       exceptions that carry their HTTP status (rendered by ``app.web.errors``)
* ``experiments``  the experiment definition: parsing and validating what admins send
* ``requests``     the public request bodies (assign, reward) parsed against the limits

May import: the standard library, ``bandits`` (the context encoder owns the feature
rules). Imported by: ``app.storage``, ``app.service``, ``app.reporting``, ``app.web``.
"""
