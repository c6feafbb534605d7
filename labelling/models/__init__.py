"""Domain models, one module per domain: projects, images, annotations, jobs."""

from labelling.models.annotation import Annotation, AnnotationCount
from labelling.models.image import Image
from labelling.models.job import Job
from labelling.models.project import Invite, LabelClass, Membership, Project, Role
from labelling.models.queue import Assignment, QueueItem
from labelling.models.training import EncoderVersion, ModelVersion, SelectionRound

__all__ = [
    "Annotation",
    "AnnotationCount",
    "Assignment",
    "EncoderVersion",
    "Image",
    "Invite",
    "Job",
    "LabelClass",
    "Membership",
    "ModelVersion",
    "Project",
    "QueueItem",
    "Role",
    "SelectionRound",
]
