"""Checks deploy/ offline, as CI runs it: the Dockerfile against hadolint's rules, every kustomize
overlay rendered and each object validated against the Kubernetes schemas (kubernetes-validate),
the policy every Quanyu workload keeps (probes, limits, a locked-down securityContext, a
versioned image, and beside each service its PodDisruptionBudget, autoscaler and NetworkPolicy),
every alert and dashboard query parsed as PromQL, the metrics they read listed in metrics.txt
(which cli/tests/serve.rs finds exported by a served suite), and compose.yaml's files and
references.

    python3 deploy/check.py        # needs hadolint, kustomize, kubernetes-validate, promql-parser

Tools: KUSTOMIZE and HADOLINT name the binaries when they are not on PATH.
"""

import os
import pathlib
import subprocess
import sys
import tomllib

import kubernetes_validate
import promql_parser
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
ROOT = DEPLOY.parent
sys.path.insert(0, str(DEPLOY / "grafana"))
import dashboards  # noqa: E402  (deploy/grafana is not a package)

OVERLAYS = ["base", "overlays/dev", "overlays/prod"]
# The oldest Kubernetes the manifests support (native gRPC probes are GA from 1.27) and the
# newest the validator knows.
KUBERNETES_VERSIONS = ["1.27.0", kubernetes_validate.utils.latest_version() + ".0"]
# Objects of operators' own resource definitions: no schema ships with Kubernetes.
CUSTOM_RESOURCES = {("postgresql.cnpg.io/v1", "Cluster")}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
IMAGE = "quanyu"


def workspace_version():
    with open(ROOT / "Cargo.toml", "rb") as manifest:
        return tomllib.load(manifest)["workspace"]["package"]["version"]


def drain_seconds():
    """How long a service takes to stop: the drain delay, then the grace for calls in flight."""
    with open(DEPLOY / "k8s/base/quanyu.toml", "rb") as config:
        server = tomllib.load(config)["server"]
    return server["drain_delay_ms"] / 1000 + server["shutdown_grace_secs"]


def render(overlay):
    kustomize = os.environ.get("KUSTOMIZE", "kustomize")
    built = subprocess.run(
        [kustomize, "build", str(DEPLOY / "k8s" / overlay)], check=True, capture_output=True, text=True
    )
    return [document for document in yaml.safe_load_all(built.stdout) if document]


def schema_errors(objects):
    errors = []
    for item in objects:
        if (item["apiVersion"], item["kind"]) in CUSTOM_RESOURCES:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(item, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                errors.append(f"{name(item)} (Kubernetes {version}): {error.message} at {list(error.path)}")
            except kubernetes_validate.SchemaNotFoundError:
                errors.append(f"{name(item)}: no schema in Kubernetes {version}")
    return errors


def name(item):
    return f"{item['kind']}/{item['metadata']['name']}"


def name_and_tag(image):
    """`registry/path/name:tag` as (name, tag); the tag is empty when there is none."""
    name, _, tag = image.rsplit("/", 1)[-1].partition(":")
    return name, tag


def is_quanyu(image):
    return name_and_tag(image)[0] == IMAGE


def container_violations(kind, container, version):
    where = f"container {container['name']}"
    found = []
    security = container.get("securityContext", {})
    if security.get("allowPrivilegeEscalation") is not False:
        found.append(f"{where}: allowPrivilegeEscalation is not false")
    if security.get("readOnlyRootFilesystem") is not True:
        found.append(f"{where}: readOnlyRootFilesystem is not true")
    if "ALL" not in security.get("capabilities", {}).get("drop", []):
        found.append(f"{where}: capabilities do not drop ALL")
    resources = container.get("resources", {})
    if "memory" not in resources.get("limits", {}):
        found.append(f"{where}: no memory limit")
    if "cpu" not in resources.get("requests", {}):
        found.append(f"{where}: no cpu request")
    image = container.get("image", "")
    tag = name_and_tag(image)[1]
    if not tag or tag == "latest":
        found.append(f"{where}: image {image!r} is not tagged with a version")
    elif is_quanyu(image) and tag != version:
        found.append(f"{where}: image {image!r} is not the workspace version {version}")
    if kind != "Job":
        probes = ["readinessProbe", "livenessProbe"] + (["startupProbe"] if is_quanyu(image) else [])
        found += [f"{where}: no {probe}" for probe in probes if probe not in container]
    return found


def violations(objects, version, drain):
    """What in the rendered objects breaks the policy, one line each."""
    found = []
    by_kind = {}
    for item in objects:
        by_kind.setdefault(item["kind"], []).append(item)
    for item in objects:
        if item["kind"] not in WORKLOADS:
            continue
        pod = item["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext", {})
        problems = []
        if pod_security.get("runAsNonRoot") is not True:
            problems.append("pod: runAsNonRoot is not true")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append("pod: seccompProfile is not RuntimeDefault")
        for container in pod.get("initContainers", []) + pod["containers"]:
            problems += container_violations(item["kind"], container, version)
        runs_quanyu = any(is_quanyu(container.get("image", "")) for container in pod["containers"])
        if item["kind"] == "Deployment" and runs_quanyu:
            if pod.get("terminationGracePeriodSeconds", 30) <= drain:
                problems.append(f"terminationGracePeriodSeconds is not above the {drain:g} s drain")
            labels = pod_labels(item)
            for kind in ["PodDisruptionBudget", "NetworkPolicy", "Service"]:
                if not any(selects(other, labels) for other in by_kind.get(kind, [])):
                    problems.append(f"no {kind} selects its pods")
            if not any(
                other["spec"]["scaleTargetRef"]["name"] == item["metadata"]["name"]
                for other in by_kind.get("HorizontalPodAutoscaler", [])
            ):
                problems.append("no HorizontalPodAutoscaler scales it")
        if item["kind"] == "Job" and runs_quanyu and version.replace(".", "-") not in item["metadata"]["name"]:
            problems.append(f"the migration Job's name does not carry the version {version}")
        found += [f"{name(item)}: {problem}" for problem in problems]
    return found


def pod_labels(workload):
    return workload["spec"]["template"]["metadata"].get("labels", {})


def selects(item, labels):
    """Whether `item` (a Service, PodDisruptionBudget or NetworkPolicy) selects pods with `labels`."""
    spec = item.get("spec", {})
    if item["kind"] == "Service":
        selector = spec.get("selector", {})
    else:
        selector = spec.get("selector", spec.get("podSelector", {})).get("matchLabels", {})
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def queries():
    """Every PromQL expression of the alerts and dashboards, by where it stands."""
    with open(DEPLOY / "prometheus/alerts.yaml") as rules:
        groups = yaml.safe_load(rules)["groups"]
    found = {f"alert {rule['alert']}": rule["expr"] for group in groups for rule in group["rules"]}
    found.update({f"dashboard query {number}": expr for number, expr in enumerate(dashboards.expressions())})
    return found


def metric_names(expressions):
    """The metrics the expressions read, and the problems of those that do not parse."""
    names, problems = set(), []
    for where, expr in expressions.items():
        try:
            # Grafana's interval variable is not PromQL: any duration parses the same.
            parsed = promql_parser.parse(expr.replace("$__rate_interval", "5m"))
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        promql_parser.walk(parsed, lambda node: names.add(node.name) if isinstance(node, promql_parser.VectorSelector) else None)
    return names, problems


def observability_problems():
    names, problems = metric_names(queries())
    listed = set((DEPLOY / "metrics.txt").read_text().split())
    if names != listed:
        problems.append(
            f"metrics.txt lists {sorted(listed - names)} that no query reads and misses {sorted(names - listed)}"
        )
    for name, text in dashboards.rendered().items():
        path = DEPLOY / "grafana/dashboards" / name
        if not path.exists() or path.read_text() != text:
            problems.append(f"grafana/dashboards/{name} is not what grafana/dashboards.py writes")
    return problems


def compose_problems():
    """What in compose.yaml points nowhere: a mounted file missing, a scrape target or a
    dependency that is not a service of it. (No container engine here runs it.)"""
    with open(DEPLOY / "compose.yaml") as file:
        services = yaml.safe_load(file)["services"]
    problems = []
    for service_name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and not (DEPLOY / source).exists():
                problems.append(f"compose {service_name}: mounts {source}, which does not exist")
        for dependency in service.get("depends_on", {}):
            if dependency not in services:
                problems.append(f"compose {service_name}: depends on {dependency}, not a service")
    with open(DEPLOY / "prometheus/prometheus.yml") as file:
        scraped = yaml.safe_load(file)["scrape_configs"]
    for job in scraped:
        for config in job.get("static_configs", []):
            for target in config["targets"]:
                if target.split(":")[0] not in services:
                    problems.append(f"prometheus.yml scrapes {target}, not a service of compose.yaml")
    return problems


def main():
    version, drain = workspace_version(), drain_seconds()
    failures = []
    hadolint = os.environ.get("HADOLINT", "hadolint")
    linted = subprocess.run([hadolint, str(DEPLOY / "docker/Dockerfile")], capture_output=True, text=True)
    failures += [f"Dockerfile: {line}" for line in linted.stdout.splitlines() if line.strip()]
    if linted.returncode != 0 and not linted.stdout.strip():
        failures.append(f"Dockerfile: hadolint failed: {linted.stderr.strip()}")
    for overlay in OVERLAYS:
        objects = render(overlay)
        problems = schema_errors(objects) + violations(objects, version, drain)
        failures += [f"{overlay}: {problem}" for problem in problems]
        print(f"{overlay}: {len(objects)} objects, {len(problems)} problems")
    observability = observability_problems()
    print(f"alerts and dashboards: {len(queries())} queries, {len(observability)} problems")
    failures += observability + compose_problems()
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
