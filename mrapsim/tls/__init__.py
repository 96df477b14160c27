"""TLS as bytes: the sans-IO ClientHello reader, fingerprints, alerts and certificates."""
