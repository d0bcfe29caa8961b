"""docker/: the images cannot be built here (no Docker), so check what can be checked:
they are made by the scripts the tests exercise, and compose publishes on loopback only."""

from __future__ import annotations

import yaml

from tests.support.cluster import ROOT

DOCKER = ROOT / "docker"


def test_images_are_built_by_the_tested_scripts() -> None:
    etl = (DOCKER / "etl.Dockerfile").read_text()
    train = (DOCKER / "train.Dockerfile").read_text()
    assert "bash scripts/package.sh" in etl  # make package, tests/cluster
    assert "openjdk-17" in etl and "/opt/entrypoint.sh" in etl
    assert "bash scripts/setup.sh" in train  # make setup -> scripts/build_horovod.sh
    assert "NCCL' .venv/horovod-check-build.txt" in train and "torch.version.cuda" in train
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert '"torch==2.13.0"' in setup and "build_horovod.sh" in setup


def test_compose_has_a_master_two_workers_and_a_trainer_on_loopback_ports() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"spark-master", "spark-worker-1", "spark-worker-2", "trainer"} <= services.keys()
    workers = [
        s
        for s in services.values()
        if "org.apache.spark.deploy.worker.Worker" in s.get("command", [])
    ]
    assert len(workers) == 2
    ports = [p for s in services.values() for p in s.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports), ports
    trainer = services["trainer"]
    assert trainer["build"]["dockerfile"] == "docker/train.Dockerfile"
    assert trainer["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
