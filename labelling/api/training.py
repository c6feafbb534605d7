"""ML engineers' API: start jobs, encoder and model versions, metrics, selection rounds."""

from __future__ import annotations

import uuid
import zipfile

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from labelling.api.base import ListApi, paginated, strict
from labelling.api.jobs import JobOutput, ProjectJobListApi
from labelling.catalog import SSL_METHODS, STRATEGIES
from labelling.models import EncoderVersion, ModelVersion, Role, SelectionRound
from labelling.models.job import FORECAST_KIND, TRAINING_KINDS
from labelling.selectors.access import access_encoder_version, access_model_version, access_project
from labelling.selectors.metrics import audit_by_class, forecast, learning_curve
from labelling.services.errors import InvalidInput, NotFound, PayloadTooLarge
from labelling.services.training import (
    encoder_version_activate,
    forecast_refit_request,
    model_version_activate,
    pretraining_pool_check,
    training_job_request,
)


class PretrainParams(serializers.Serializer):
    method = serializers.ChoiceField(choices=SSL_METHODS, required=False)
    max_minutes = serializers.FloatField(required=False, min_value=0.01, max_value=24 * 60)
    max_steps = serializers.IntegerField(required=False, min_value=1, max_value=10_000_000)
    batch_size = serializers.IntegerField(required=False, min_value=8, max_value=4096)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    from_encoder = serializers.IntegerField(
        required=False, min_value=1, help_text="an encoder version to start from"
    )


_SEED = {"required": False, "min_value": 0, "max_value": 2**31 - 1}
_CONSISTENCY = {
    "required": False,
    "min_value": 0,
    "max_value": 1_000_000,
    "help_text": "steps of consistency training on the whole pool below the fine-tune threshold (3,000 "
    "labels on pools up to 200,000 images, 1,000 above; default: 10,000 "
    "on a worker with CUDA, about two minutes there; 0 on a CPU)",
}


class SelectParams(serializers.Serializer):
    # Not bald: it reads MC samples of a model trained in the same job (a cycle's).
    strategy = serializers.ChoiceField(choices=[s for s in STRATEGIES if s != "bald"], required=False)
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    seed = serializers.IntegerField(**_SEED)


class FinetuneParams(serializers.Serializer):
    seed = serializers.IntegerField(**_SEED)
    consistency_steps = serializers.IntegerField(**_CONSISTENCY)


class CycleParams(SelectParams):
    strategy = serializers.ChoiceField(choices=STRATEGIES, required=False)
    consistency_steps = serializers.IntegerField(**_CONSISTENCY)


class PredictParams(serializers.Serializer):
    """A predict job takes no params: it scores the pool with the current model."""


class ForecastParams(serializers.Serializer):
    """A forecast job takes no params: it refits the newest model version's forecast for the
    project's target, budget and labels per image as they are now (a change to them queues one)."""


class EmbedParams(serializers.Serializer):
    encoder_version = serializers.IntegerField(required=False, min_value=1)


JOB_KINDS = (*TRAINING_KINDS, FORECAST_KIND)  # what POST /api/projects/{id}/jobs starts
PARAMS = {
    "pretrain": PretrainParams,
    "embed": EmbedParams,
    "finetune": FinetuneParams,
    "predict": PredictParams,
    "select": SelectParams,
    "cycle": CycleParams,
    "forecast": ForecastParams,
}


def _minutes_allowed(user, minutes: float | None) -> None:
    """A pretraining longer than JOB_MAX_MINUTES is for site staff only: workers take one job at a
    time, so any account (anyone may create a project) could otherwise hold them for a day and every
    other project's jobs would wait (a security review)."""
    if minutes and minutes > settings.JOB_MAX_MINUTES and not (user.is_staff or user.is_superuser):
        raise InvalidInput(
            f"max_minutes: at most {settings.JOB_MAX_MINUTES:g} (JOB_MAX_MINUTES; site staff may ask for more)",
            code="invalid",
        )


def _job_input(kind: str) -> type[serializers.Serializer]:
    """The request body of a job of one kind, for the schema: its kind and that kind's params."""
    fields = {
        "kind": serializers.ChoiceField(choices=[kind]),
        "params": PARAMS[kind](required=False, help_text=f"what a {kind} job takes; every one optional"),
    }
    name = "".join(part.title() for part in kind.split("_")) + "JobInput"
    return type(name, (serializers.Serializer,), fields)


# One body per kind in the schema (a discriminated oneOf on "kind"), so clients see each kind's params.
JOB_INPUT_SCHEMA = PolymorphicProxySerializer(
    component_name="JobCreateInput",
    serializers={kind: _job_input(kind) for kind in JOB_KINDS},
    resource_type_field_name="kind",
)


def _check_checkpoint_archive(upload) -> None:
    """What can be told of an encoder checkpoint without loading it (the web process has no torch):
    torch.save writes a zip with a data.pkl; a TorchScript file (what a model download is) has its
    code beside that. Anything else is refused now rather than failing in a worker."""
    head = upload.read(4)
    upload.seek(0)
    names: list[str] = []
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(upload) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError):
            names = []
        upload.seek(0)
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        raise InvalidInput(
            "not a torch checkpoint (expected the zip format torch.save writes)", code="not_a_checkpoint"
        )
    if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
        raise InvalidInput(
            "this is a TorchScript model (what GET /api/models/{id}/download gives), not an encoder "
            "checkpoint: upload an encoder saved by models_zoo (EncoderArtifact.save)",
            code="torchscript_not_encoder",
        )


class JobCreateApi(APIView):
    """Start a training job (202). At most one runs per project: a second answers 409 naming it."""

    class JobCreateInput(serializers.Serializer):
        kind = serializers.ChoiceField(choices=JOB_KINDS)
        params = serializers.DictField(required=False, default=dict)

    @extend_schema(request=JOB_INPUT_SCHEMA, responses={202: JobOutput}, operation_id="jobs_create")
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        data = strict(self.JobCreateInput, request.data)
        kind = data.validated_data["kind"]
        if kind == "select" and data.validated_data["params"].get("strategy") == "bald":
            # BALD reads MC samples of a model trained in the same job; a select job has none (it
            # used to run margin instead, saying nothing).
            raise InvalidInput(
                "bald needs the MC samples of a model trained in the same job: set the project's "
                "selection_strategy to bald (cycles use it) or choose another strategy",
                code="invalid",
            )
        unknown = set(data.validated_data["params"]) - set(PARAMS[kind]().fields)
        if unknown:
            raise InvalidInput(
                f"unknown params for {kind}: {', '.join(sorted(unknown))}", code="unknown_field"
            )
        params_in = PARAMS[kind](data=data.validated_data["params"])
        if not params_in.is_valid():
            named = "; ".join(
                f"{field}: {' '.join(map(str, msgs))}" for field, msgs in params_in.errors.items()
            )
            raise InvalidInput(f"invalid params: {named}", details=params_in.errors)
        params = dict(params_in.validated_data)
        _minutes_allowed(request.user, params.get("max_minutes"))
        if kind == "pretrain" and params.get("from_encoder"):
            access_encoder_version(request.user, params["from_encoder"])  # 404 unless yours
        if kind == "pretrain":
            pretraining_pool_check(project=project)
        if kind == "embed":
            version_id = params.get("encoder_version") or project.current_encoder_id
            if params.get("encoder_version") and not project.encoder_versions.filter(pk=version_id).exists():
                raise InvalidInput(
                    f"encoder version {version_id} is not one of this project's: embed with one of its "
                    f"own (GET /api/projects/{project.id}/encoders), or pretrain from it (from_encoder)",
                    code="no_encoder",
                )
            if version_id is None:
                raise InvalidInput("no encoder version to embed with: pretrain first", code="no_encoder")
            params["encoder_version"] = version_id
        if kind in ("finetune", "predict", "select", "cycle") and project.current_encoder_id is None:
            raise InvalidInput(
                "the project has no encoder yet: start a pretrain job first", code="no_encoder"
            )
        if kind == "predict" and project.current_model_id is None:
            raise InvalidInput("the project has no model yet: run finetune or cycle first", code="no_model")
        if kind == FORECAST_KIND:
            if not project.model_versions.exists():
                raise InvalidInput(
                    "the project has no model version yet: a forecast comes with the first retrain",
                    code="no_model",
                )
            job = forecast_refit_request(project=project, params=params, created_by=request.user)
        else:
            job = training_job_request(project=project, kind=kind, params=params, created_by=request.user)
        return Response(JobOutput(job).data, status=status.HTTP_202_ACCEPTED)


class EncoderOutput(serializers.ModelSerializer):
    is_current = serializers.SerializerMethodField()

    class Meta:
        model = EncoderVersion
        fields = [
            "id",
            "project",
            "job",
            "source",
            "parent",
            "config",
            "metadata",
            "embeddings",
            "created_at",
            "is_current",
        ]

    def get_is_current(self, obj: EncoderVersion) -> bool:
        return obj.project.current_encoder_id == obj.id


class ModelOutput(serializers.ModelSerializer):
    is_current = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "project",
            "job",
            "encoder_version",
            "mode",
            "train_label_count",
            "metrics",
            "created_at",
            "is_current",
        ]

    def get_is_current(self, obj: ModelVersion) -> bool:
        return obj.project.current_model_id == obj.id

    def get_metrics(self, obj: ModelVersion) -> dict:
        # The stop set is bookkeeping for the stop rule (it would only bloat every listing), the
        # pool's ids file the worker's.
        # The audit predictions are the worker's too (later versions rescore them).
        hidden = ("stop_set", "pool_ids_key", "audit_predictions")
        return {k: v for k, v in obj.metrics.items() if k not in hidden}


class EncoderListApi(ListApi):
    @extend_schema(responses=EncoderOutput(many=True), operation_id="encoders_list")
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        qs = project.encoder_versions.select_related("project").order_by("-id")
        return paginated(request=request, view=self, queryset=qs, serializer_class=EncoderOutput)


class EncoderUploadApi(APIView):
    """Upload a models_zoo encoder checkpoint to start from (transfer); a worker checks and embeds it."""

    class EncoderUploadInput(serializers.Serializer):
        file = serializers.FileField()
        max_minutes = serializers.FloatField(required=False, min_value=0.01, max_value=24 * 60)

    @extend_schema(
        request={"multipart/form-data": EncoderUploadInput},
        responses={202: JobOutput},
        operation_id="encoders_upload",
    )
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        data = strict(self.EncoderUploadInput, request.data)  # an unknown field is an error, not dropped
        upload = data.validated_data["file"]
        pretraining_pool_check(project=project)  # the uploaded encoder embeds the pool in a pretrain job
        if upload.size > settings.UPLOAD_MAX_CHECKPOINT_BYTES:
            raise PayloadTooLarge(f"the checkpoint is over {settings.UPLOAD_MAX_CHECKPOINT_BYTES:,} bytes")
        _check_checkpoint_archive(upload)
        key = default_storage.save(f"uploads/{project.id}/{uuid.uuid4().hex}.pt", upload)
        params = {"upload_key": key}
        if data.validated_data.get("max_minutes"):
            _minutes_allowed(request.user, data.validated_data["max_minutes"])
            params["max_minutes"] = data.validated_data["max_minutes"]
        try:
            job = training_job_request(
                project=project, kind="pretrain", params=params, created_by=request.user
            )
        except BaseException:
            default_storage.delete(key)
            raise
        return Response(JobOutput(job).data, status=status.HTTP_202_ACCEPTED)


def _encoder(request, encoder_id: int) -> EncoderVersion:
    # Outside the project: the same 404 as an id that does not exist (a security review).
    return access_encoder_version(request.user, encoder_id)


def _model(request, model_id: int) -> ModelVersion:
    return access_model_version(request.user, model_id)


class EncoderDetailApi(APIView):
    @extend_schema(responses=EncoderOutput, operation_id="encoders_retrieve")
    def get(self, request, encoder_id: int):
        return Response(EncoderOutput(_encoder(request, encoder_id)).data)


class EncoderActivateApi(APIView):
    @extend_schema(request=None, responses=EncoderOutput, operation_id="encoders_activate")
    def post(self, request, encoder_id: int):
        version = _encoder(request, encoder_id)
        if not version.embeddings.get("shards"):
            raise InvalidInput("this encoder version has no embeddings yet", code="not_ready")
        encoder_version_activate(version=version)
        version.project.refresh_from_db()
        return Response(EncoderOutput(version).data)


class ModelListApi(ListApi):
    @extend_schema(responses=ModelOutput(many=True), operation_id="models_list")
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        qs = project.model_versions.select_related("project").order_by("-id")
        return paginated(request=request, view=self, queryset=qs, serializer_class=ModelOutput)


class ModelDetailApi(APIView):
    @extend_schema(responses=ModelOutput, operation_id="models_retrieve")
    def get(self, request, model_id: int):
        return Response(ModelOutput(_model(request, model_id)).data)


class ModelActivateApi(APIView):
    """Make this model version current, with the encoder version it was trained on (its scores and
    its head belong to that encoder's embeddings); a ``predict`` job writes its predictions over the
    pool again (suggestions, predictions.csv and the next round follow it)."""

    @extend_schema(request=None, responses=ModelOutput, operation_id="models_activate")
    def post(self, request, model_id: int):
        version = _model(request, model_id)
        model_version_activate(version=version)
        version.project.refresh_from_db()
        return Response(ModelOutput(version).data)


class ModelDownloadApi(APIView):
    """The model (encoder + head) as TorchScript: ``torch.jit.load`` runs it with torch alone.
    Input: float (N, C, H, W) in [0, 1]; output: class probabilities in the label set's order."""

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}, operation_id="models_download"
    )
    def get(self, request, model_id: int):
        version = _model(request, model_id)
        key = version.artifact_key.replace(".joblib", ".torchscript.pt")
        response = FileResponse(
            default_storage.open(key, "rb"),
            as_attachment=True,
            filename=f"model-{version.id}.torchscript.pt",
            # Without it FileResponse guesses from ".pt": application/vnd.snesdev-page-table.
            content_type="application/octet-stream",
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response


class CurvePointOutput(serializers.Serializer):
    model_version = serializers.IntegerField()
    labels = serializers.IntegerField()
    accuracy = serializers.FloatField()
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    audit_labels = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class StopRuleOutput(serializers.Serializer):
    fired = serializers.BooleanField(help_text="mean_kappa has reached threshold")
    threshold = serializers.FloatField(help_text="the project's stop_kappa")
    mean_kappa = serializers.FloatField(allow_null=True, help_text="mean of the last 3 kappas")
    kappas = serializers.ListField(
        child=serializers.FloatField(),
        help_text="Cohen's kappa of each compared model version against the one before",
    )
    labels = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="training labels of the later version of each kappa (empty for forecasts stored before it was recorded)",
    )
    spacing = serializers.IntegerField(
        allow_null=True, help_text="least number of training labels between the compared versions"
    )


class ProjectionOutput(serializers.Serializer):
    labels = serializers.ListField(
        child=serializers.FloatField(), help_text="training images, from the last measured count on"
    )
    accuracy = serializers.ListField(child=serializers.FloatField(), help_text="the fitted curve at each")
    low = serializers.ListField(child=serializers.FloatField(), help_text="its interval's low end")
    high = serializers.ListField(child=serializers.FloatField(), help_text="its interval's high end")


class ForecastOutput(serializers.Serializer):
    target_accuracy = serializers.FloatField()
    training_labels = serializers.IntegerField(
        help_text="labelled images outside the audit slice (the learning curve's x axis)"
    )
    labels_to_target = serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        allow_null=True,
        help_text="training images at which the target is reached: point, low, high (high null: never in some bootstrap curves)",
    )
    more_images_to_target = serializers.ListField(
        child=serializers.IntegerField(allow_null=True),
        allow_null=True,
        help_text="labels_to_target minus training_labels (point, low, high)",
    )
    more_labels_to_target = serializers.ListField(
        child=serializers.IntegerField(allow_null=True),
        allow_null=True,
        help_text="the same in budget labels: annotations_per_image per image, plus the audit slice's share",
    )
    reachable = serializers.BooleanField(
        allow_null=True,
        help_text="false: the fitted curve never reaches the target, or only beyond the images the pool holds (see note); null: no fit yet",
    )
    accuracy_at_budget = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="expected accuracy when label_budget runs out (point, low, high); null without a budget or until a model version is trained under the current one",
    )
    budget_images = serializers.FloatField(
        allow_null=True,
        help_text="training images when the budget runs out (those now, plus what the labels left buy; at most the pool's); accuracy_at_budget is the curve's there",
    )
    pool_ends_first = serializers.BooleanField(
        help_text="the pool runs out of images before the budget: budget_images is the pool's size"
    )
    budget_spent = serializers.BooleanField(help_text="no budget was left when the model version was trained")
    label_budget = serializers.IntegerField(allow_null=True)
    stop_rule = StopRuleOutput()
    points = serializers.IntegerField()
    projection = ProjectionOutput(
        allow_null=True,
        help_text="the learning curve ahead (as the dashboard draws it): up to the budget's or the pool's images, or a little past the target; null until a curve is fitted",
    )
    projection_ends = serializers.ChoiceField(
        choices=["budget", "pool", "target", ""],
        help_text="where the projection stops: where the budget or the pool runs out, a little past the "
        'target (before the budget\'s end), or "" (3 times the labels so far, or no projection)',
    )
    note = serializers.CharField(allow_blank=True)


class ConfusedWithOutput(serializers.Serializer):
    label = serializers.IntegerField()
    name = serializers.CharField()
    count = serializers.IntegerField()


class ClassAccuracyOutput(serializers.Serializer):
    label = serializers.IntegerField()
    name = serializers.CharField()
    audit_labels = serializers.IntegerField(help_text="audit images of this class")
    correct = serializers.IntegerField()
    recall = serializers.FloatField(allow_null=True, help_text="share of them the model got right")
    recall_interval = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    predicted = serializers.IntegerField(help_text="audit images the model put in this class")
    precision = serializers.FloatField(allow_null=True)
    confused_with = ConfusedWithOutput(allow_null=True, help_text="the class it most often took them for")


class ByClassOutput(serializers.Serializer):
    model_version = serializers.IntegerField(allow_null=True)
    classes = ClassAccuracyOutput(many=True)
    confusion = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="[true label id, predicted label id, count] for each non-empty cell",
    )


class MetricsOutput(serializers.Serializer):
    learning_curve = CurvePointOutput(many=True)
    forecast = ForecastOutput()
    by_class = ByClassOutput(help_text="the current model on the audit slice, class by class")


class MetricsApi(APIView):
    """Audit-slice accuracy per model version (with 95 % Wilson intervals), the forecast
    (labels to reach the target: point, low, high), the stop rule's state, and ``by_class``: the
    current model's accuracy on the audit slice class by class."""

    @extend_schema(responses=MetricsOutput, operation_id="metrics_retrieve")
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        return Response(
            {
                "learning_curve": learning_curve(project),
                "forecast": forecast(project),
                "by_class": audit_by_class(project),
            }
        )


class RoundOutput(serializers.ModelSerializer):
    item_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = SelectionRound
        fields = [
            "id", "number", "strategy", "requested_strategy", "model_version", "encoder_version", "batch_size",
            "labels_at_selection", "created_at", "item_count",
        ]  # fmt: skip


class RoundItemOutput(serializers.Serializer):
    image = serializers.IntegerField(source="image_id")
    score = serializers.FloatField()
    reason = serializers.CharField()
    is_audit = serializers.BooleanField()
    state = serializers.CharField()
    priority = serializers.FloatField()


class RoundListApi(ListApi):
    @extend_schema(responses=RoundOutput(many=True), operation_id="rounds_list")
    def get(self, request, project_id: int):
        from django.db.models import Count

        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        qs = project.selection_rounds.annotate(item_count=Count("items")).order_by("-number")
        return paginated(request=request, view=self, queryset=qs, serializer_class=RoundOutput)


class RoundItemsApi(ListApi):
    @extend_schema(responses=RoundItemOutput(many=True), operation_id="round_items")
    def get(self, request, project_id: int, number: int):
        project = access_project(request.user, project_id, min_role=Role.ENGINEER)
        rnd = project.selection_rounds.filter(number=number).first()
        if rnd is None:
            raise NotFound("no such selection round")
        qs = rnd.items.order_by("-priority", "id")
        return paginated(request=request, view=self, queryset=qs, serializer_class=RoundItemOutput)


class ProjectJobsApi(ProjectJobListApi, JobCreateApi):
    """GET: the project's jobs, newest first. POST: start a training job."""


class DashboardOutput(serializers.Serializer):
    budget = serializers.DictField()
    progress = serializers.DictField(child=serializers.IntegerField())
    classes = serializers.ListField(child=serializers.DictField())
    learning_curve = CurvePointOutput(many=True)
    forecast = ForecastOutput()
    annotators = serializers.ListField(child=serializers.DictField())
    by_class = ByClassOutput()
    review = serializers.DictField(
        child=serializers.IntegerField(), help_text="images to review: suspects, disagreements; reviewed"
    )


class DashboardApi(APIView):
    """What the admin dashboard shows, as data (the page renders the same selectors)."""

    @extend_schema(responses=DashboardOutput, operation_id="dashboard_retrieve")
    def get(self, request, project_id: int):
        from labelling.selectors.dashboard import project_dashboard

        project = access_project(request.user, project_id, min_role=Role.ADMIN)
        return Response(DashboardOutput(project_dashboard(project)).data)
