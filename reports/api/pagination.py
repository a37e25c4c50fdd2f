"""Keyset (cursor) pagination that returns bare JSON arrays with a `Link: <…>; rel="next"` header.

The reference web UI reads bare arrays, so the page is never wrapped in an envelope. The cursor
is the (ordering value, id) of the last row served; the next page is `WHERE (value, id)` after
it, which stays fast on append-only tables of any size (no OFFSET).
"""

from django.db.models import DateTimeField, Q
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from coordinator_site.boundary.params import decode_cursor, encode_cursor, parse_choice, parse_whole_number
from reports.api.openapi import CURSOR_FORMAT


def parse_limit(request, *, default: int, maximum: int, name: str = "limit") -> int:
    """The `limit` query parameter as an int in [1, maximum] (absent or empty: `default`)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    return parse_whole_number(raw, field=name, minimum=1, maximum=maximum)


class KeysetPagination(BasePagination):
    """`?limit=` (default/maximum per view) and `?cursor=` (opaque); orderings chosen by `?ordering=`.

    Views set `keyset_orderings` (allowed `ordering` values, first = default; each is one field,
    `-` for descending, with the primary key as tie-breaker), `default_limit` and `max_limit`.
    """

    limit_query_param = "limit"
    cursor_query_param = "cursor"
    ordering_query_param = "ordering"

    def __init__(self):
        self.next_url = None

    @staticmethod
    def view_config(view):
        orderings = getattr(view, "keyset_orderings", ("-id",))
        return orderings, getattr(view, "default_limit", 100), getattr(view, "max_limit", 1000)

    def page_params(self, request, view, model) -> tuple[str, int, tuple | None]:
        """(ordering, limit, cursor as (value, pk) or None) from the query, checked in that order."""
        orderings, default_limit, max_limit = self.view_config(view)
        ordering = request.query_params.get(self.ordering_query_param)
        ordering = orderings[0] if ordering is None else parse_choice(ordering, field="ordering", choices=orderings)
        limit = parse_limit(request, default=default_limit, maximum=max_limit, name=self.limit_query_param)
        cursor = request.query_params.get(self.cursor_query_param)
        if cursor is not None:
            model_field = model._meta.get_field(ordering.lstrip("-"))
            cursor = decode_cursor(
                cursor, field=self.cursor_query_param, is_datetime=isinstance(model_field, DateTimeField)
            )
        return ordering, limit, cursor

    def next_page_url(self, request, value, pk) -> str:
        """This request's URL with the cursor after the row (value, pk)."""
        url = request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, encode_cursor(value, pk))

    def paginate_queryset(self, queryset, request, view=None):
        ordering, limit, cursor = self.page_params(request, view, queryset.model)
        descending = ordering.startswith("-")
        field = ordering.lstrip("-")
        model_field = queryset.model._meta.get_field(field)
        if cursor is not None:
            value, pk = cursor
            after = "lt" if descending else "gt"
            if model_field.primary_key:
                queryset = queryset.filter(**{f"pk__{after}": pk})
            else:
                # (field, pk) after (value, pk) as `field <= value AND (field < value OR pk < pk)`: the
                # first condition is an index range (the plain OR form made PostgreSQL read the whole
                # index up to the cursor: 100 ms half-way through a million predictions, 1 ms this way).
                queryset = queryset.filter(**{f"{field}__{after}e": value}).filter(
                    Q(**{f"{field}__{after}": value}) | Q(**{f"pk__{after}": pk})
                )
        order = [ordering] if model_field.primary_key else [ordering, "-pk" if descending else "pk"]
        # A view may read its rows itself (plain tuples instead of model instances) with
        # `keyset_rows(queryset, count)` and say where a row's cursor is with `keyset_cursor(row, field)`.
        fetch = getattr(view, "keyset_rows", None)
        rows = fetch(queryset.order_by(*order), limit + 1) if fetch else list(queryset.order_by(*order)[: limit + 1])
        self.next_url = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            cursor_of = getattr(view, "keyset_cursor", None)
            value, pk = cursor_of(last, field) if cursor_of else (getattr(last, field), last.pk)
            self.next_url = self.next_page_url(request, value, pk)
        return rows

    def get_paginated_response(self, data):
        headers = {"Link": f'<{self.next_url}>; rel="next"'} if self.next_url else {}
        return Response(data, headers=headers)

    def get_paginated_response_schema(self, schema):
        return schema  # a bare array: pages are linked by the Link header only

    def get_schema_operation_parameters(self, view):
        orderings, default_limit, max_limit = self.view_config(view)
        params = [
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Page size (1..{max_limit}, default {default_limit}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": max_limit, "default": default_limit},
            },
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": 'Opaque cursor; follow the `Link: <…>; rel="next"` response header.',
                "schema": {"type": "string", "format": CURSOR_FORMAT, "minLength": 1},
            },
        ]
        if len(orderings) > 1:
            params.append(
                {
                    "name": self.ordering_query_param,
                    "required": False,
                    "in": "query",
                    "description": f"Order of the rows (default {orderings[0]}).",
                    "schema": {"type": "string", "enum": list(orderings), "default": orderings[0]},
                }
            )
        return params
