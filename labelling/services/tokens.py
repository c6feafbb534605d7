"""API tokens end with the password they were given for: a new password (however it is set: the
password page, `manage.py changepassword`, Django's admin) deletes the user's token, so a stolen
token stops working once the password is changed; `DELETE /api/auth/token` ends it at will."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token


def token_revoke(*, user) -> bool:
    """Delete the user's API token; True if there was one. The next token request makes a new one."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)


@receiver(pre_save, sender=get_user_model(), dispatch_uid="labelling.tokens.password_changed")
def _revoke_on_new_password(sender, instance, update_fields=None, **kwargs) -> None:
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return  # a new user, or a save of other fields (the last login, on every login)
    old = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if old is not None and old != instance.password:
        token_revoke(user=instance)
