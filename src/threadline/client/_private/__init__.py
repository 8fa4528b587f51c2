"""The SDK's internals: nothing here is public; import from ``threadline.client``."""
