"""Pure DataFrame -> DataFrame functions: no I/O, no session creation."""
