"""Demo serverless applications, traced with ``tracer`` only, and the local cloud they run on."""
