"""Projects, label sets and members."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labelling.api.base import ListApi, paginated, strict
from labelling.catalog import STRATEGIES
from labelling.models import Invite, LabelClass, Membership, Project, Role
from labelling.models.project import LABEL_BUDGET_MAX
from labelling.selectors.access import (
    access_project,
    member_candidate,
    projects_for_user,
    role_in,
    with_image_counts,
)
from labelling.services.errors import NotFound
from labelling.services.invites import (
    INVITE_DAYS_DEFAULT,
    INVITE_DAYS_MAX,
    INVITE_USES_MAX,
    invite_create,
    invite_withdraw,
    open_invites,
)
from labelling.services.projects import (
    label_add,
    label_delete,
    label_update,
    membership_remove,
    membership_set,
    project_create,
    project_delete,
    project_update,
)


class LabelClassOutput(serializers.ModelSerializer):
    class Meta:
        model = LabelClass
        fields = ["id", "name", "hotkey", "order"]


class ProjectOutput(serializers.ModelSerializer):
    labels = LabelClassOutput(source="label_classes", many=True, read_only=True)
    my_role = serializers.SerializerMethodField()
    image_count = serializers.IntegerField(read_only=True, default=None)
    labelled_count = serializers.IntegerField(read_only=True, default=None)

    class Meta:
        model = Project
        fields = [
            "id", "name", "description", "instructions", "labels", "label_budget", "cost_per_label", "currency",
            "target_accuracy", "annotations_per_image", "audit_fraction", "selection_strategy", "stop_kappa",
            "labelling_paused", "cycle_every", "batch_size", "reservation_minutes", "created_at", "my_role",
            "image_count", "labelled_count",
        ]  # fmt: skip

    def get_my_role(self, obj: Project) -> str | None:
        request = self.context.get("request")
        return role_in(request.user, obj) if request else None


class LabelInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    hotkey = serializers.CharField(max_length=1, required=False, allow_blank=True)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": 100, "description": "the label's name"},
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "hotkey": {"type": "string", "maxLength": 1},
                },
                "required": ["name"],
                "additionalProperties": False,
            },
        ]
    }
)
class LabelItemField(serializers.Field):
    """One label of a new project: its name, or ``{"name", "hotkey"}`` to choose its key."""

    default_error_messages = {"invalid": 'a label is a name or an object {{"name", "hotkey"}}'}

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, dict):
            self.fail("invalid")
        unknown = set(data) - set(LabelInput().fields)
        if unknown:
            raise serializers.ValidationError(f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
        label = LabelInput(data=data)
        label.is_valid(raise_exception=True)
        return dict(label.validated_data)


class ProjectFields(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    instructions = serializers.CharField(required=False, allow_blank=True, max_length=50_000)
    label_budget = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=LABEL_BUDGET_MAX
    )
    cost_per_label = serializers.DecimalField(
        required=False, allow_null=True, max_digits=10, decimal_places=4, min_value=0
    )
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, allow_blank=True)
    target_accuracy = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    annotations_per_image = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=10,
        help_text="labels each image gets from different annotators (default 1); a change applies at once "
        "to the images still queued, finished ones keep theirs",
    )
    audit_fraction = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=0.5,
        help_text="share of each selection round drawn at random to measure accuracy (default 0.05; 0: no "
        "accuracy, forecast or learning curve); a change applies from the next round",
    )
    selection_strategy = serializers.ChoiceField(choices=STRATEGIES, required=False)
    stop_kappa = serializers.FloatField(
        required=False,
        min_value=0.5,
        max_value=1.0,
        help_text="the stop rule fires once the mean of the last 3 kappas between successive model versions "
        "(at least 100 training labels apart) reaches this (default 0.99, Bloodgood & Vijay-Shanker); lower stops sooner at some accuracy",
    )
    cycle_every = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)
    batch_size = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=10_000,
        help_text="images per selection round, at least (default 40): a retrain's round grows to outlast the "
        "next retrain at the team's labelling pace",
    )
    reservation_minutes = serializers.IntegerField(required=False, min_value=1, max_value=24 * 60)


def _with_counts(qs):
    return with_image_counts(qs).prefetch_related("label_classes")


class ProjectListApi(ListApi):
    class ProjectCreateInput(ProjectFields):
        name = serializers.CharField(max_length=200)
        labels = serializers.ListField(
            child=LabelItemField(),
            min_length=2,
            max_length=1000,
            help_text='names (["boot", "sandal"]) or objects with a hotkey ([{"name": "boot", "hotkey": "b"}])',
        )

    @extend_schema(responses=ProjectOutput(many=True), operation_id="projects_list")
    def get(self, request):
        qs = _with_counts(projects_for_user(request.user)).order_by("id")
        return paginated(request=request, view=self, queryset=qs, serializer_class=self._out)

    def _out(self, *args, **kwargs):
        return ProjectOutput(*args, context={"request": self.request}, **kwargs)

    @extend_schema(request=ProjectCreateInput, responses={201: ProjectOutput}, operation_id="projects_create")
    def post(self, request):
        data = strict(self.ProjectCreateInput, request.data)
        fields = dict(data.validated_data)
        labels = fields.pop("labels")
        project = project_create(name=fields.pop("name"), labels=labels, created_by=request.user, **fields)
        project = _with_counts(Project.objects.filter(pk=project.pk)).get()
        return Response(self._out(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    class ProjectUpdateInput(ProjectFields):
        name = serializers.CharField(max_length=200, required=False)
        labelling_paused = serializers.BooleanField(required=False)

    @extend_schema(responses=ProjectOutput, operation_id="projects_retrieve")
    def get(self, request, project_id: int):
        access_project(request.user, project_id)
        project = _with_counts(Project.objects.filter(pk=project_id)).get()
        return Response(ProjectOutput(project, context={"request": request}).data)

    @extend_schema(request=ProjectUpdateInput, responses=ProjectOutput, operation_id="projects_update")
    def patch(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ADMIN)
        data = strict(self.ProjectUpdateInput, request.data, partial=True)
        project_update(project=project, **data.validated_data)
        project = _with_counts(Project.objects.filter(pk=project_id)).get()
        return Response(ProjectOutput(project, context={"request": request}).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("confirm", bool, required=False, description="needed when it has labels")
        ],
        responses={204: None},
        operation_id="projects_destroy",
        description=(
            "Deletes the project, its pool, labels, jobs and versions, and its stored files: images no"
            " other project has, their thumbnails, and every encoder, embedding, model and upload."
            " A project with labels needs confirm=true (409 project_has_labels): export them first."
        ),
    )
    def delete(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ADMIN)
        project_delete(
            project=project, confirm=request.query_params.get("confirm", "").lower() in ("true", "1", "yes")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _label(request, project_id: int, label_id: int) -> LabelClass:
    project = access_project(request.user, project_id, min_role=Role.ADMIN)
    label = LabelClass.objects.select_related("project").filter(pk=label_id, project=project).first()
    if label is None:
        raise NotFound("no such label in this project")
    return label


class LabelListApi(APIView):
    """The project's label set can grow after labelling started: a new label goes at the end."""

    class LabelAddInput(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        hotkey = serializers.CharField(
            max_length=1, required=False, allow_blank=True, help_text="0-9 or a-z; left out: a free one"
        )

    @extend_schema(request=LabelAddInput, responses={201: LabelClassOutput}, operation_id="labels_create")
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ADMIN)
        data = strict(self.LabelAddInput, request.data)
        label = label_add(
            project=project, name=data.validated_data["name"], hotkey=data.validated_data.get("hotkey")
        )
        return Response(LabelClassOutput(label).data, status=status.HTTP_201_CREATED)


class LabelDetailApi(APIView):
    class LabelUpdateInput(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False)
        hotkey = serializers.CharField(
            max_length=1, required=False, allow_blank=True, help_text='"" for none'
        )

    @extend_schema(request=LabelUpdateInput, responses=LabelClassOutput, operation_id="labels_update")
    def patch(self, request, project_id: int, label_id: int):
        label = _label(request, project_id, label_id)
        data = strict(self.LabelUpdateInput, request.data, partial=True)
        label = label_update(
            label=label, name=data.validated_data.get("name"), hotkey=data.validated_data.get("hotkey")
        )
        return Response(LabelClassOutput(label).data)

    @extend_schema(
        responses={204: None},
        operation_id="labels_destroy",
        description="Only a label no image has and before any model was trained (409 label_in_use).",
    )
    def delete(self, request, project_id: int, label_id: int):
        label_delete(label=_label(request, project_id, label_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MembershipOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    user_id = serializers.IntegerField()

    class Meta:
        model = Membership
        fields = ["user_id", "username", "role", "created_at"]


class MemberListApi(ListApi):
    class MemberSetInput(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(responses=MembershipOutput(many=True), operation_id="members_list")
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ADMIN)
        qs = project.memberships.select_related("user").order_by("id")
        return paginated(request=request, view=self, queryset=qs, serializer_class=MembershipOutput)

    @extend_schema(
        request=MemberSetInput,
        responses={201: MembershipOutput, 200: MembershipOutput},
        operation_id="members_set",
    )
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ADMIN)
        data = strict(self.MemberSetInput, request.data)
        user = member_candidate(request.user, data.validated_data["username"])
        if user is None:
            raise NotFound(
                "no user you work with in another project has that username: send them an invite link"
                " (POST /api/projects/{id}/invites)",
                code="unknown_user",
            )
        added = not project.memberships.filter(user=user).exists()
        membership = membership_set(project=project, user=user, role=data.validated_data["role"])
        code = status.HTTP_201_CREATED if added else status.HTTP_200_OK  # 200: a member's role changed
        return Response(MembershipOutput(membership).data, status=code)


class MemberDetailApi(APIView):
    @extend_schema(responses={204: None}, operation_id="members_remove")
    def delete(self, request, project_id: int, user_id: int):
        project = access_project(request.user, project_id, min_role=Role.ADMIN)
        membership_remove(project=project, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InviteOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(
        source="created_by.username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = Invite
        fields = ["id", "role", "note", "max_uses", "used_count", "expires_at", "created_at", "created_by"]


class InviteCreatedOutput(InviteOutput):
    token = serializers.CharField(help_text="shown once; only its hash is stored")
    url = serializers.CharField(help_text="the page that joins the project (signing up if need be)")

    class Meta(InviteOutput.Meta):
        fields = [*InviteOutput.Meta.fields, "token", "url"]


class InviteListApi(ListApi):
    class InviteInput(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices)
        days = serializers.IntegerField(
            required=False, min_value=1, max_value=INVITE_DAYS_MAX, help_text="how long the link works (7)"
        )
        max_uses = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=INVITE_USES_MAX,
            help_text="how many people may join with it (1)",
        )
        note = serializers.CharField(
            required=False, allow_blank=True, max_length=100, help_text="whom it is for, to tell links apart"
        )

    @extend_schema(
        responses=InviteOutput(many=True),
        operation_id="invites_list",
        description="The project's invite links that still work (not expired, not used up).",
    )
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ADMIN)
        qs = open_invites(project).select_related("created_by")
        return paginated(request=request, view=self, queryset=qs, serializer_class=InviteOutput)

    @extend_schema(
        request=InviteInput,
        responses={201: InviteCreatedOutput},
        operation_id="invites_create",
        description="A link that lets people join in `role`, with their account or a new one. The "
        "token is in the answer once; only its hash is stored.",
    )
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ADMIN)
        data = strict(self.InviteInput, request.data).validated_data
        invite, token = invite_create(
            project=project,
            role=data["role"],
            created_by=request.user,
            days=data.get("days", INVITE_DAYS_DEFAULT),
            max_uses=data.get("max_uses", 1),
            note=data.get("note", ""),
        )
        body = {
            **InviteOutput(invite).data,
            "token": token,
            "url": request.build_absolute_uri(reverse("invite", kwargs={"token": token})),
        }
        return Response(body, status=status.HTTP_201_CREATED)


class InviteDetailApi(APIView):
    @extend_schema(responses={204: None}, operation_id="invites_withdraw")
    def delete(self, request, project_id: int, invite_id: int):
        project = access_project(request.user, project_id, min_role=Role.ADMIN)
        invite_withdraw(project=project, invite_id=invite_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
