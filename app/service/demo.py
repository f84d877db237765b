"""The demo experiment ``flask seed-demo`` creates and the ``/demo`` page shows."""
from __future__ import annotations

DEMO_EXPERIMENT = {
    "key": "homepage-hero",
    "name": "Homepage hero",
    "mode": "bandit",
    "reward": "binary",
    "control": "control",
    "holdout": 0.1,
    "min_share": 0.01,
    "variants": [
        {"key": "control", "payload": {"headline": "Project tracking for busy teams",
                                       "offer": "Start a free trial", "cta": "Sign up"}},
        {"key": "urgency", "payload": {"headline": "Ship this week's work on time",
                                       "offer": "30 days free, no card needed", "cta": "Start free today"}},
        {"key": "social", "payload": {"headline": "12,000 teams plan their week with us",
                                      "offer": "Join them free for 30 days", "cta": "Join free"}},
    ],
}
