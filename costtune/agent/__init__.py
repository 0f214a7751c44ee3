"""What runs beside a trial, wherever it runs.

- ``supervise.py`` watches one local attempt. It is started as its own process (``python -I
  .../supervise.py``), so it imports nothing from costtune and only the standard library: it must
  start in milliseconds and work in whatever environment the trial gets.
- ``worker.py`` is ``costtune agent``, which runs one attempt on a cloud instance for a controller's
  worker API (``client.py``), watches for interruption notices (``metadata.py``), moves checkpoints
  (``checkpoints.py``); ``userdata.py`` renders the cloud-init script that starts it. No cloud SDK is
  needed, except boto3 for an ``s3://`` checkpoint URI.
"""
