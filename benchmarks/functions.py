"""The no-op job for the peers that run any importable function by its dotted path (django-rq,
django-q2)."""


def add(x: int, y: int) -> int:
    return x + y
