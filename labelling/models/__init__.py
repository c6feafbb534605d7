"""Domain models, one module per domain: projects, images, annotations, jobs."""

from labelling.models.annotation import Annotation
from labelling.models.image import Image
from labelling.models.job import Job
from labelling.models.project import LabelClass, Membership, Project, Role

__all__ = ["Annotation", "Image", "Job", "LabelClass", "Membership", "Project", "Role"]
