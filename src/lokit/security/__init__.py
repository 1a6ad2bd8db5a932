"""Certificates and TLS settings for lokit's servers and clients.

`certs` makes a CA and issues server and client certificates (what proglog used
cfssl for); `tls` loads them into server and client settings and builds the
credentials each transport needs. Nothing here is imported by `import lokit`.
"""
