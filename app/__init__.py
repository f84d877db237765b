"""Lever: self-hosted experimentation and bandit optimisation.

Rooms, arrows one way (see README "How it works"):
``web`` → ``service`` → (``bandits``, ``stats``, ``storage``); ``web`` → ``reporting`` → ``stats``;
every room may use ``domain`` (shared records and rules) and ``settings``.
``flask --app app`` finds ``create_app`` here.
"""
from .web.factory import create_app

__all__ = ["create_app"]
