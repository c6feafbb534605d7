from rest_framework.pagination import PageNumberPagination

from labelling.services.errors import InvalidInput


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        """``page_size`` if given, 1 to 500; anything else is a 400 on every list (DRF's own falls back
        to the default without a word, so ``?page_size=0`` was ignored where a filter refused it)."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise InvalidInput(
                f"page_size must be a whole number from 1 to {self.max_page_size}", code="invalid"
            )
        return size

    def get_schema_operation_parameters(self, view):
        """DRF's ``page`` and ``page_size`` parameters, with the bounds the lists enforce."""
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
                parameter["description"] = (
                    f"results per page, 1 to {self.max_page_size} (default {self.page_size})"
                )
            elif parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters
