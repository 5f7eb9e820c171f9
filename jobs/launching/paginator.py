"""A paginator for tables too large to count on every page view."""
from functools import cached_property

from django.core.paginator import Paginator
from django.db import connections

EXACT_COUNT_LIMIT = 10_000


class EstimatingPaginator(Paginator):
    """Counts exactly up to EXACT_COUNT_LIMIT rows, and asks PostgreSQL's planner beyond that.

    A page is found by its ids alone first (an index-only scan past the skipped rows), and only
    those rows are then read with their joins: a deep page costs the skipped index entries, not
    the skipped rows.
    """

    def page(self, number):
        number = self.validate_number(number)
        start = (number - 1) * self.per_page
        ids = list(self.object_list.values_list("pk", flat=True)[start: start + self.per_page])
        return self._get_page(list(self.object_list.filter(pk__in=ids)), number, self)

    @cached_property
    def count(self):
        exact = self.object_list.order_by()[: EXACT_COUNT_LIMIT + 1].count()
        if exact <= EXACT_COUNT_LIMIT:
            return exact
        query = self.object_list.order_by()
        sql, params = query.query.sql_with_params()
        with connections[query.db].cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            return max(int(cursor.fetchone()[0][0]["Plan"]["Plan Rows"]), exact)
