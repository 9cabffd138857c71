"""Fakes of the services we call, served over real sockets for tests and benchmarks."""
