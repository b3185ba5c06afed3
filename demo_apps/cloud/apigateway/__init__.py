"""API Gateway: REST and HTTP API stages (throttling, caching, mapping), from their definitions."""
