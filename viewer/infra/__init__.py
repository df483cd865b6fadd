"""Infrastructure below the services: settings (``config``), the database tables (``records``),
the unbound Flask/Celery extensions (``extensions``), the embedded broker (``broker``) and the
artifact store (``artifacts``). Nothing here knows a use-case."""
