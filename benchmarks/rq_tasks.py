"""The no-op job for django-rq: any importable function."""


def add(x: int, y: int) -> int:
    return x + y
