"""addsvc: Go kit's example adder, wire-compatible with its `pb.Add` gRPC service."""
