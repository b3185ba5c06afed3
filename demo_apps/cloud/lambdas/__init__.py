"""Lambda: functions in real processes (environments, cold starts, concurrency, async invokes, VPC), its API."""
