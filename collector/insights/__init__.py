"""Insights: anomalies in a scope's fault, throttle and error rates and latency, with their root cause."""
