"""Operations: Prometheus metrics (/metrics), structured JSON logs with a request id, readiness details."""
