"""Model hosts: model code runs in locked-down processes, never in the web or worker process.

* ``guards``  -- what a host may not do (network, processes, files, memory, syscalls), applied in
                 the host right after it is forked;
* ``server``  -- the fork server: a fresh interpreter with a scrubbed environment that has imported
                 the libraries and computed nothing, and forks one host per model version;
* ``host``    -- the loop a host runs: load one model through the restricted loader, then answer
                 predictions over a socket in the ``core.hostproto`` format;
* ``pool``    -- the app's side: which hosts are alive (least recently used go), deadlines, and
                 the errors a crash, a timeout or a malformed answer become.
"""
