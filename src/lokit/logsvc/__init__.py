"""The commit log service: proglog's log.v1 API over lokit's storage engine.

`service` holds the business logic over `lokit.commitlog.Topics`, `positions`
the consumer positions, `pb` and `http` the wire codecs, `definition` the
wiring into a `ServiceDef`, `client` a typed client for the CLI and benchmarks.
"""
