"""Writes: every change to the domain goes through a service named ``<entity>_<action>``."""
