"""The ``lever`` console script: ``flask --app app`` with Lever's commands."""
from __future__ import annotations

from flask.cli import FlaskGroup

from .factory import create_app


def main() -> None:
    FlaskGroup(create_app=create_app, help="Lever: experiments and bandits.")(prog_name="lever")
