"""Supporter statistics and segments: validated definitions, set-based SQL, a summary.

The sync engine calls :func:`recompute` for the supporters a run touched, inside the
run's transaction; `supportersync stats recompute --all` recomputes everyone (daily
from cron, since engagement changes with time alone). docs/segments.md explains every
statistic and the configuration.
"""

from supportersync.stats.compute import RecomputeResult, recompute, recompute_stale, stale_supporter_ids
from supportersync.stats.segments import DEFAULT_SEGMENTS, Band, Segmentation, SegmentConfig, load_segments
from supportersync.stats.summary import summary

__all__ = [
    "DEFAULT_SEGMENTS",
    "Band",
    "RecomputeResult",
    "SegmentConfig",
    "Segmentation",
    "load_segments",
    "recompute",
    "recompute_stale",
    "stale_supporter_ids",
    "summary",
]
