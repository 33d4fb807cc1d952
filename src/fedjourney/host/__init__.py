"""What runs on the host, around the containers: the compose file, logs, baselines.

  compose.py   docker-compose.yml rendered from the federation config
  logs.py      `fedjourney logs`: story lines from compose or a log file, filtered, merged
  report.py    `fedjourney report`: local-only and centralised baselines beside a run
"""
