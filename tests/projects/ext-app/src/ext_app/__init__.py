from ext_app._speed import double

__all__ = ["double"]
