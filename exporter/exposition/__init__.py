"""Prometheus text exposition (format 0.0.4), rendered once per change.

This module knows the metric families and how one number, WABA or account
renders into them; :mod:`exporter.store` decides when to render and keeps the
results (the kube-state-metrics metrics-store idea).

The family names, types and label names defined here are the public interface
that dashboards and alert rules depend on.
"""

from __future__ import annotations

# The package is the families and their rendering: it re-exports every public name of both modules.
from exporter.exposition.families import *  # noqa: F403
from exporter.exposition.render import *  # noqa: F403
