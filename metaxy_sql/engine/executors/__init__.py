"""Executors: run rendered SQL on one engine, exchanging Arrow."""
