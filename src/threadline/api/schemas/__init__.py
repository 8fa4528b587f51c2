"""Request and response bodies of the REST API (Pydantic), separate from the tables."""
