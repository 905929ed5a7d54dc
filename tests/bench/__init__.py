"""The benchmark: the platform side by side with bare Quart and FastAPI (``make bench``)."""
