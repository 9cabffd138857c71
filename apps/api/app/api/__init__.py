"""HTTP adapters: parse, call a service, shape the response."""
