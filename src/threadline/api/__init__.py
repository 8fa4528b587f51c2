"""The HTTP edge: the FastAPI app, its routers, schemas and middleware."""
