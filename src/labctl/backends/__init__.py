"""Side effects live here, one small backend per kind of resource."""
