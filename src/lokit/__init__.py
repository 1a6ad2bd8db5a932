"""lokit: a Go-kit-style toolkit and runtime for local-first Python microservices."""

__version__ = "0.1.0"
