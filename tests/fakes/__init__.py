"""Fake outside services for the tests, served over real sockets."""
