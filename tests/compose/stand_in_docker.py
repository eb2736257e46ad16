"""A stand-in for the `docker` CLI where no Docker engine exists (no Docker engine: argument level).

python-on-whales builds real command lines and runs this instead of docker (client_call, or first on
PATH). It appends each argv as one JSON line to $STAND_IN_DOCKER_LOG and answers from the JSON scenario
in $STAND_IN_DOCKER_SCENARIO: {"engine": bool, "containers": [{"service", "status", "health"}],
"logs": str, "fail": {"<subcommand>": "stderr text"}}.
"""

import json
import os
import sys

args = sys.argv[1:]
with open(os.environ["STAND_IN_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
with open(os.environ["STAND_IN_DOCKER_SCENARIO"]) as handle:
    scenario = json.load(handle)
containers = scenario.get("containers", [])
words = [a for a in args if not a.startswith("-")]
for command, stderr in scenario.get("fail", {}).items():
    if command in words:
        sys.stderr.write(stderr + "\n")
        sys.exit(1)
if args[0] == "version":
    if not scenario.get("engine", True):
        sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n")
        sys.exit(1)
    print(json.dumps({"Client": {"Version": "27.0.0"}, "Server": {"Version": "27.0.0"}}))
elif args[0] == "compose" and "ps" in args:
    print("\n".join(f"id{index}" for index in range(len(containers))))
elif args[0] == "compose" and "logs" in args:
    print(scenario.get("logs", ""), end="")
elif args[:2] == ["container", "inspect"]:
    c = containers[int(args[2].removeprefix("id"))]
    state = {"Status": c["status"], **({"Health": {"Status": c["health"]}} if c.get("health") else {})}
    labels = {"com.docker.compose.service": c["service"]}
    print(
        json.dumps(
            [
                {
                    "Id": args[2],
                    "Name": f"/n8nctl-{c['service']}-1",
                    "State": state,
                    "Config": {"Labels": labels},
                }
            ]
        )
    )
