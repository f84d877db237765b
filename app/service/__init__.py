"""The service room: the data flow of a visitor and of an event, framework-free.

* ``decisions``     assign and reward (``Services`` bundles what they need)
* ``modes``         the allocation modes as a registry (ab, bandit, contextual, the holdout's uniform)
* ``policy_cache``  the per-worker cache of fitted policies, refreshed from storage
* ``segments``      which context features the report breaks counters down by
* ``analysis``      stored counters → ``stats`` inputs → the stats JSON
* ``experiments``   operator actions (create, status)
* ``privacy``       visitor ids at rest, erasure of model state, retention
* ``tokens``        signed assignment tokens
* ``exports``       the event log as CSV
* ``demo``          the demo experiment

May import: ``app.domain``, ``app.storage``, ``bandits``, ``stats``, ``app.settings``.
Never ``flask`` or ``app.web`` (a test checks): usable from the CLI, the benchmarks and
tests without an app context.
"""
