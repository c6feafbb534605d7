"""Who am I, and an API token for scripts."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from labelling.api.base import strict
from labelling.services.errors import InvalidInput
from labelling.services.login_guard import login_allowed
from labelling.services.tokens import token_revoke


class MeApi(APIView):
    class MeOutput(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()

    @extend_schema(responses=MeOutput, operation_id="me")
    def get(self, request):
        return Response({"id": request.user.id, "username": request.user.username})


class TokenApi(APIView):
    """Exchange a username and password for an API token (send it as ``Authorization: Token ...``),
    or end your token (``DELETE``: it stops working at once; a new password ends it too)."""

    permission_classes = [AllowAny]

    def perform_authentication(self, request) -> None:
        # POST is the way in: it reads no credentials but the body's (a stale token header, or a
        # browser session without its CSRF token, must not refuse it). DELETE needs to know whose.
        if request.method != "POST":
            super().perform_authentication(request)

    class TokenInput(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, style={"input_type": "password"})

    class TokenOutput(serializers.Serializer):
        token = serializers.CharField()

    @extend_schema(request=TokenInput, responses=TokenOutput, operation_id="token_create")
    def post(self, request):
        data = strict(self.TokenInput, request.data)
        login_allowed(request, data.validated_data["username"])  # 429 with the time left
        user = authenticate(request, **data.validated_data)  # failures counted by the backend's guard
        if user is None:
            raise InvalidInput("wrong username or password", code="bad_credentials")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    @extend_schema(responses={204: None}, operation_id="token_destroy")
    def delete(self, request):
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        token_revoke(user=request.user)
        return Response(status=204)
