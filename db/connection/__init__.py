"""The connection: settings, the pooled engine and its unit of work, the embedded server,
liveness of pooled connections, PgBouncer and tenant settings, migrations at start."""
