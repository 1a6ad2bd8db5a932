"""Transports: gRPC and HTTP servers and clients over Unix sockets and TCP."""
