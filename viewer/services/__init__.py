"""The use-cases over the database and the artifact store; pages, the API, the CLI and the tasks
call these and query no table themselves.

- ``registry``: register, address, load and delete model versions (through the safe loader);
- ``datasets``: upload, ingest, list and delete datasets;
- ``submission``: check that a model fits a dataset and submit scoring / importance jobs;
- ``jobs``: the lifecycle every job kind shares (claim, heartbeat, one guarded finish, end
  hook), job lookup and the one status object; ``kinds``: the registry of job kinds that
  ``viewer.tasks`` fills; ``reaper``: recovering work whose worker died;
- ``scoring``, ``importance``, ``comparison``: what those jobs do when a worker runs them
  (``comparison`` also builds the compare page's and API's answer);
- ``serving``: resolve a model reference fast and run the one predict path;
- ``results``: a finished job's results as downloads and per-plot CSV;
- ``accounts``: users and tokens; ``health``: database and worker checks;
- ``artifacts``: the artifact store as the services use it, and the sweep;
- ``demo``: the demo's models, datasets and jobs.

They raise one ``ServiceError(kind, code, message)``.
"""
