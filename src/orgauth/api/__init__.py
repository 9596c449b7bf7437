"""HTTP layer: dependencies and thin routers that call into services."""
