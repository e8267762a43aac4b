"""DESIGN's tables as the tests read them: written out once, from DESIGN.md itself and
independently of the programme file, so that a test comparing the two can fail."""

from __future__ import annotations

# DESIGN section 1: the first batch's quotas, in the order of the plan.
DESIGN_QUOTAS = {
    "hebei": 3,
    "shanxi": 2,
    "inner_mongolia": 3,
    "liaoning": 2,
    "heilongjiang": 2,
    "jiangsu": 3,
    "zhejiang": 2,
    "anhui": 2,
    "shandong": 3,
    "henan": 2,
    "hubei": 2,
    "hunan": 2,
    "guangdong": 3,
    "shaanxi": 2,
    "xinjiang": 2,
}
PROVINCES = tuple(DESIGN_QUOTAS)

# DESIGN section 2: the states.
DESIGN_STATES = (
    "drafted",
    "provincial_approval",
    "approved",
    "submitted",
    "confirmed",
    "rejected",
    "withdrawn",
    "follow_up_batch",
    # DESIGN section 2b: the construction years
    "plan_review",
    "in_construction",
    "rectification",
    "completed",
    "revoked",
)
