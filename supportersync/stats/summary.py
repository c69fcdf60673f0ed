"""Counts per segment and totals, from supporter_stats alone."""
def summary(conn, organization_id, *, segments=None):
    raise NotImplementedError
