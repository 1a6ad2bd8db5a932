"""Example services from Go kit's workshop: addsvc (Sum, Concat, Mult) and stringsvc.

Each package holds its business logic (`service`), service middlewares
(`middleware`) and one wiring function (`definition`) that turns it into a
`ServiceDef` the runtime serves over gRPC and HTTP.
"""
