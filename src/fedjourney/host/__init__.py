"""What runs on the host, around the containers: deployment files, runs, logs, baselines.

  deployment.py  what runs (services, networks, volumes), as data, from the federation config
  serialize.py   the one way a deployment file is written (PyYAML's safe dumper)
  compose.py     docker-compose.yml (and the kits' files) in Compose's format
  swarm.py       docker-stack.yml, the same deployment for Docker Swarm
  kit.py         a hospital kit: a site's or the researcher's compose file and role views
  views.py       each role's view of the config (what its container may read)
  run.py         `fedjourney run`: build, up, follow, results, exit status
  logs.py        `fedjourney logs`: story lines from compose or a log file, filtered, merged
  report.py      `fedjourney report`: local-only and centralised baselines beside a run
  compare.py     `fedjourney compare`: several runs side by side
"""
