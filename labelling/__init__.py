"""The Django project: settings, domain models, services, API and web UI.

Never imports torch, faiss or scikit-learn: the request path only reads stored results.
"""
