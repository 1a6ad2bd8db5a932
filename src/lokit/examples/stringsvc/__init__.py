"""stringsvc: Go kit's example string service (Uppercase, Count), addsvc's dependency."""
