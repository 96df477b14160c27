"""The admin listener: health, readiness, metrics, recent connections, configuration, faults."""
