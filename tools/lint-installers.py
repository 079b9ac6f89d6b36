#!/usr/bin/python3
"""Lints what CI cannot run: the GPU Dockerfile, the Kubernetes manifests, the Slurm script.

Debian 12 has no hadolint, so the Dockerfile rules that matter are checked here:
  - every FROM names a pinned tag (not :latest, not untagged) or an earlier stage;
  - apt-get update and install share one RUN that also removes /var/lib/apt/lists;
    installs say -y and --no-install-recommends;
  - no ADD of a URL (nor ADD at all: COPY says what it does);
  - every COPY source (not --from) exists in the repo and is not hidden by .dockerignore;
  - the final stage switches to a non-root USER before its ENTRYPOINT, and ENTRYPOINT, CMD
    and HEALTHCHECK CMD use the exec (JSON) form.
Kubernetes (installers/kubernetes/*.yaml, python3-yaml): every document parses and has
apiVersion, kind and metadata.name; workloads run the same image (tagged with the project
version) with the same args; every volumeMount names a volume; every ConfigMap/Secret volume
names an object and keys defined here; the DaemonSet's selector matches its pod labels; pods
run as non-root and request nvidia.com/gpu; the ConfigMap's worker.toml parses and its
token_file, cache_dir and the --config path lie on the mounts that provide them.
Slurm (installers/slurm/*.sbatch) and the installers' shell scripts: `bash -n`, and shellcheck
(warnings and errors) when it is installed; the array script asks for an array and a GPU.

  /usr/bin/python3 tools/lint-installers.py              # lint the repo; exit 1 on any problem
  /usr/bin/python3 tools/lint-installers.py --self-test  # each rule catches a broken input
"""

import argparse
import fnmatch
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


# ---------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions(text):
    """(line number, INSTRUCTION, arguments) with continuations joined and comments dropped."""
    instructions = []
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        pending += stripped
        keyword, _, arguments = pending.partition(" ")
        instructions.append((start, keyword.upper(), arguments.strip()))
        pending = ""
    if pending:
        instructions.append((start, "UNTERMINATED", pending))
    return instructions


def substitute(value, variables):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                  lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), value)


def parse_arg(arguments):
    name, _, default = arguments.partition("=")
    return name.strip(), default.strip().strip('"')


def is_exec_form(arguments):
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return False
    return isinstance(value, list) and value and all(isinstance(v, str) for v in value)


def dockerignore_patterns(root):
    path = os.path.join(root, ".dockerignore")
    if not os.path.exists(path):
        return []
    patterns = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line.rstrip("/"))
    return patterns


def ignored(relative, patterns):
    """True when .dockerignore excludes `relative` (or a folder above it); '!' re-includes."""
    parts = relative.strip("/").split("/")
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if fnmatch.fnmatchcase(prefix, body) or (
                    body.startswith("**/") and fnmatch.fnmatchcase(parts[depth - 1], body[3:])):
                result = not negate
                break
    return result


def lint_dockerfile(path, root, problems):
    rel = os.path.relpath(path, root)
    with open(path, encoding="utf-8") as f:
        instructions = dockerfile_instructions(f.read())
    patterns = dockerignore_patterns(root)
    global_args = {}
    stages = []  # names
    stage_index = -1
    final = {"user": None, "user_line": 0, "entrypoint_line": 0}
    for number, keyword, arguments in instructions:
        where = f"{rel}:{number}"
        if keyword == "UNTERMINATED":
            problems.add(where, "instruction ends with a line continuation")
        elif keyword == "ARG" and stage_index < 0:
            name, default = parse_arg(arguments)
            global_args[name] = default
        elif keyword == "FROM":
            stage_index += 1
            final = {"user": None, "user_line": 0, "entrypoint_line": 0}
            words = [w for w in arguments.split() if not w.startswith("--")]
            image = substitute(words[0], global_args) if words else ""
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.append(words[2])
            else:
                stages.append(str(stage_index))
            if image in stages[:-1] or image == "scratch":
                continue
            if "$" in image:
                problems.add(where, f"FROM {words[0]}: an ARG without a default")
                continue
            name_part = image.split("@")[0]
            tag = name_part.rsplit(":", 1)[1] if ":" in name_part.split("/")[-1] else ""
            if "@sha256:" in image:
                continue
            if not tag:
                problems.add(where, f"FROM {image}: pin a tag (an untagged image is :latest)")
            elif tag == "latest":
                problems.add(where, f"FROM {image}: pin a version, not :latest")
        elif keyword == "RUN":
            lint_run(where, arguments, problems)
        elif keyword == "ADD":
            if re.search(r"(https?|ftp)://|git@", arguments):
                problems.add(where, "ADD of a URL: download in a RUN with a checksum instead")
            else:
                problems.add(where, "ADD: use COPY for local files")
        elif keyword == "COPY":
            lint_copy(where, arguments, root, patterns, stages, problems)
        elif keyword == "USER":
            final["user"], final["user_line"] = arguments.split()[0], number
        elif keyword == "ENTRYPOINT":
            final["entrypoint_line"] = number
            if not is_exec_form(arguments):
                problems.add(where, "ENTRYPOINT must use the exec form [\"binary\", ...] "
                             "(the shell form keeps signals from the worker)")
        elif keyword == "CMD":
            if not is_exec_form(arguments):
                problems.add(where, "CMD must use the exec form [\"arg\", ...]")
        elif keyword == "HEALTHCHECK":
            command = re.sub(r"^(--\S+\s+)*", "", arguments)
            if command.upper() != "NONE":
                if not command.upper().startswith("CMD "):
                    problems.add(where, "HEALTHCHECK needs CMD")
                elif not is_exec_form(command[4:].strip()):
                    problems.add(where, "HEALTHCHECK CMD must use the exec form")
        elif keyword == "WORKDIR":
            if not arguments.startswith("/"):
                problems.add(where, f"WORKDIR {arguments}: use an absolute path")
    if stage_index < 0:
        problems.add(rel, "no FROM")
        return
    user = final["user"]
    if not final["entrypoint_line"]:
        problems.add(rel, "the final stage has no ENTRYPOINT")
    if user is None:
        problems.add(rel, "the final stage never sets USER: the worker would run as root")
    elif user.split(":")[0] in ("root", "0"):
        problems.add(f"{rel}:{final['user_line']}", f"USER {user} is root")
    elif final["entrypoint_line"] and final["user_line"] > final["entrypoint_line"]:
        problems.add(f"{rel}:{final['user_line']}", "USER comes after ENTRYPOINT")


def lint_run(where, command, problems):
    if "sudo " in command:
        problems.add(where, "RUN sudo: the build runs as root already")
    if re.search(r"apt-get\s+(-\S+\s+)*(install|upgrade|dist-upgrade)", command):
        if "apt-get update" not in command:
            problems.add(where, "apt-get install without apt-get update in the same RUN "
                         "(a cached update layer installs stale lists)")
        if not re.search(r"rm -rf /var/lib/apt/lists(/\*)?", command):
            problems.add(where, "apt-get install without rm -rf /var/lib/apt/lists/* in the "
                         "same RUN (the lists stay in the layer)")
        for install in re.findall(r"apt-get\s+install[^&;|]*", command):
            if "--no-install-recommends" not in install:
                problems.add(where, "apt-get install without --no-install-recommends")
            if not re.search(r"(^|\s)(-y|--yes|-\w*y\w*)(\s|$)", install):
                problems.add(where, "apt-get install without -y")
    elif "apt-get update" in command:
        problems.add(where, "apt-get update alone in a RUN: update and install together")


def lint_copy(where, arguments, root, patterns, stages, problems):
    words = arguments.split()
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    if any(f.startswith("--from=") for f in flags):
        source = next(f for f in flags if f.startswith("--from="))[len("--from="):]
        if source not in stages[:-1] and not re.match(r"[\w.-]+/[\w./-]+:", source):
            problems.add(where, f"COPY --from={source}: no such earlier stage")
        return
    if arguments.startswith("["):
        try:
            paths = json.loads(arguments)
        except json.JSONDecodeError:
            problems.add(where, "COPY: malformed JSON form")
            return
    if len(paths) < 2:
        problems.add(where, "COPY needs a source and a destination")
        return
    for source in paths[:-1]:
        relative = os.path.normpath(source).lstrip("/")
        if relative.startswith(".."):
            problems.add(where, f"COPY {source}: outside the build context")
            continue
        matches = [os.path.relpath(m, root) for m in glob.glob(os.path.join(root, relative))]
        if not matches:
            problems.add(where, f"COPY {source}: not in the repo")
        elif relative != "." and all(ignored(m, patterns) for m in matches):
            problems.add(where, f"COPY {source}: excluded by .dockerignore")


# ---------------------------------------------------------------------------------------------
# Kubernetes


WORKLOAD_KINDS = {"Job": "batch/v1", "DaemonSet": "apps/v1", "Deployment": "apps/v1",
                  "StatefulSet": "apps/v1"}
OBJECT_API = {"ConfigMap": "v1", "Secret": "v1", **WORKLOAD_KINDS}


def project_version(root):
    with open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8") as f:
        match = re.search(r"project\(\s*dipaco\s+VERSION\s+([\d.]+)", f.read())
    return match.group(1) if match else None


def load_manifests(directory, root, problems):
    documents = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(directory, name)
        rel = os.path.relpath(path, root)
        try:
            with open(path, encoding="utf-8") as f:
                loaded = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as error:
            problems.add(rel, f"YAML does not parse: {error}")
            continue
        for index, document in enumerate(loaded):
            where = f"{rel}[{index}]"
            if not isinstance(document, dict):
                problems.add(where, "not a mapping")
                continue
            for key in ("apiVersion", "kind"):
                if not document.get(key):
                    problems.add(where, f"missing {key}")
            if not (document.get("metadata") or {}).get("name"):
                problems.add(where, "missing metadata.name")
            kind = document.get("kind")
            if kind in OBJECT_API and document.get("apiVersion") != OBJECT_API[kind]:
                problems.add(where, f"{kind} wants apiVersion {OBJECT_API[kind]}")
            documents.append((where, document))
    return documents


def lint_kubernetes(directory, root, problems):
    documents = load_manifests(directory, root, problems)
    config_maps = {d["metadata"]["name"]: (w, d.get("data") or {})
                   for w, d in documents if d.get("kind") == "ConfigMap" and "metadata" in d}
    secrets = {d["metadata"]["name"]: {**(d.get("data") or {}), **(d.get("stringData") or {})}
               for w, d in documents if d.get("kind") == "Secret" and "metadata" in d}
    version = project_version(root)
    workloads = [(w, d) for w, d in documents if d.get("kind") in WORKLOAD_KINDS]
    if not workloads:
        problems.add(os.path.relpath(directory, root), "no Job or DaemonSet")
    images, arg_lists = set(), set()
    for where, workload in workloads:
        spec = workload.get("spec") or {}
        template = spec.get("template") or {}
        pod = template.get("spec") or {}
        containers = pod.get("containers") or []
        if not containers:
            problems.add(where, "spec.template.spec.containers is empty")
            continue
        if workload["kind"] == "Job" and pod.get("restartPolicy") not in ("Never", "OnFailure"):
            problems.add(where, "a Job's pods need restartPolicy Never or OnFailure")
        if workload["kind"] == "DaemonSet":
            selector = (spec.get("selector") or {}).get("matchLabels") or {}
            labels = (template.get("metadata") or {}).get("labels") or {}
            if not selector:
                problems.add(where, "DaemonSet without spec.selector.matchLabels")
            for key, value in selector.items():
                if labels.get(key) != value:
                    problems.add(where, f"selector {key}={value} does not match the pod labels")
            if not pod.get("nodeSelector") and not pod.get("affinity"):
                problems.add(where, "DaemonSet without a nodeSelector: it would run on every node")
        pod_security = pod.get("securityContext") or {}
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        for volume_name, volume in volumes.items():
            lint_volume(where, volume_name, volume, config_maps, secrets, problems)
        for container in containers:
            cwhere = f"{where} container {container.get('name')}"
            for key in ("name", "image"):
                if not container.get(key):
                    problems.add(cwhere, f"missing {key}")
            image = container.get("image", "")
            images.add(image)
            tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
            if not tag or tag == "latest":
                problems.add(cwhere, f"image {image}: pin a tag")
            elif version and tag != version:
                problems.add(cwhere, f"image tag {tag} is not the project version {version}")
            args = container.get("args") or []
            arg_lists.add(tuple(args))
            security = {**pod_security, **(container.get("securityContext") or {})}
            if not security.get("runAsNonRoot") and not security.get("runAsUser"):
                problems.add(cwhere, "set runAsNonRoot (the image's user is 10001)")
            if security.get("runAsUser") == 0:
                problems.add(cwhere, "runAsUser 0 is root")
            limits = (container.get("resources") or {}).get("limits") or {}
            if "nvidia.com/gpu" not in limits:
                problems.add(cwhere, "no nvidia.com/gpu limit: the pod gets no GPU")
            mounts = container.get("volumeMounts") or []
            for mount in mounts:
                if mount.get("name") not in volumes:
                    problems.add(cwhere, f"volumeMount {mount.get('name')} names no volume")
            lint_worker_config(cwhere, args, mounts, volumes, config_maps, secrets, problems)
    if len(images) > 1:
        problems.add(os.path.relpath(directory, root), f"workloads run different images: {images}")
    if len(arg_lists) > 1:
        problems.add(os.path.relpath(directory, root), f"workloads pass different args: {arg_lists}")


def lint_volume(where, name, volume, config_maps, secrets, problems):
    if "configMap" in volume:
        target = volume["configMap"].get("name")
        if target not in config_maps:
            problems.add(where, f"volume {name}: no ConfigMap {target} in these manifests")
            return
        keys = config_maps[target][1]
    elif "secret" in volume:
        target = volume["secret"].get("secretName")
        if target not in secrets:
            problems.add(where, f"volume {name}: no Secret {target} in these manifests")
            return
        keys = secrets[target]
    else:
        return
    source = volume.get("configMap") or volume.get("secret")
    for item in source.get("items") or []:
        if item.get("key") not in keys:
            problems.add(where, f"volume {name}: {target} has no key {item.get('key')}")


def files_of_mount(mount, volume, config_maps, secrets):
    """Paths a configMap/secret volume mount provides: {path in the container: key}."""
    source = volume.get("configMap") or volume.get("secret")
    if source is None:
        return {}
    if "configMap" in volume:
        keys = config_maps.get(source.get("name"), ("", {}))[1]
    else:
        keys = secrets.get(source.get("secretName"), {})
    items = source.get("items") or [{"key": k, "path": k} for k in keys]
    base = mount.get("mountPath", "").rstrip("/")
    return {f"{base}/{item.get('path')}": item.get("key") for item in items}


def lint_worker_config(where, args, mounts, volumes, config_maps, secrets, problems):
    if "--config" not in args or args.index("--config") + 1 >= len(args):
        problems.add(where, "args lack --config FILE")
        return
    config_path = args[args.index("--config") + 1]
    provided = {}  # container path -> (volume, key)
    for mount in mounts:
        volume = volumes.get(mount.get("name")) or {}
        for path, key in files_of_mount(mount, volume, config_maps, secrets).items():
            provided[path] = (volume, key)
    if config_path not in provided or "configMap" not in provided[config_path][0]:
        problems.add(where, f"--config {config_path} is not a file a ConfigMap mount provides")
        return
    volume, key = provided[config_path]
    text = config_maps[volume["configMap"]["name"]][1].get(key, "")
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        problems.add(where, f"{config_path} (ConfigMap key {key}) is not valid TOML: {error}")
        return
    coordinator = config.get("coordinator") or {}
    worker = config.get("worker") or {}
    if not coordinator.get("address"):
        problems.add(where, f"{config_path}: no [coordinator] address")
    token_file = coordinator.get("token_file", "")
    if not token_file or token_file not in provided or "secret" not in provided[token_file][0]:
        problems.add(where, f"{config_path}: token_file {token_file!r} is not a Secret mount's file")
    cache_dir = worker.get("cache_dir", "/var/cache/dipaco").rstrip("/")
    writable_kinds = {"emptyDir", "hostPath", "persistentVolumeClaim", "ephemeral"}
    writable = [m.get("mountPath", "").rstrip("/") for m in mounts
                if not m.get("readOnly")
                and writable_kinds & set(volumes.get(m.get("name")) or {})]
    if not any(cache_dir == w or cache_dir.startswith(w + "/") for w in writable):
        problems.add(where, f"{config_path}: cache_dir {cache_dir} is on no writable volume")


# ---------------------------------------------------------------------------------------------
# Shell scripts


def lint_shell(paths, root, problems, shellcheck=True):
    """bash -n on each script, then one shellcheck run over all of them (warnings and errors)."""
    for path in paths:
        result = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
        if result.returncode != 0:
            problems.add(os.path.relpath(path, root), f"bash -n: {result.stderr.strip()}")
    if shellcheck and shutil.which("shellcheck") and paths:
        result = subprocess.run(["shellcheck", "-S", "warning", "-f", "gcc", *paths],
                                capture_output=True, text=True)
        for line in result.stdout.splitlines():
            file, _, message = line.partition(":")
            problems.add(os.path.relpath(file, root), f"shellcheck: {message.strip()}")


def lint_sbatch(path, root, problems):
    rel = os.path.relpath(path, root)
    with open(path, encoding="utf-8") as f:
        directives = "".join(line for line in f if line.startswith("#SBATCH"))
    if "--array" not in directives:
        problems.add(rel, "no #SBATCH --array: one worker per array task")
    if not re.search(r"--(gres=gpu|gpus|gpus-per-task|gpus-per-node)", directives):
        problems.add(rel, "no GPU request (#SBATCH --gres=gpu:N or --gpus...)")


def lint_repo(root, shellcheck=True):
    problems = Problems()
    installers = os.path.join(root, "installers")
    lint_dockerfile(os.path.join(installers, "docker", "Dockerfile"), root, problems)
    lint_kubernetes(os.path.join(installers, "kubernetes"), root, problems)
    slurm = os.path.join(installers, "slurm")
    scripts = [os.path.join(slurm, n) for n in sorted(os.listdir(slurm)) if n.endswith(".sbatch")]
    for script in scripts:
        lint_sbatch(script, root, problems)
    scripts += [os.path.join(installers, "test-packages.sh"),
                os.path.join(installers, "docker", "runtime-packages.sh")]
    scripts += [os.path.join(installers, "debian", "worker", n)
                for n in ("postinst", "prerm", "postrm")]
    lint_shell([s for s in scripts if os.path.exists(s)], root, problems, shellcheck)
    if not shutil.which("shellcheck"):
        print("lint-installers: shellcheck is not installed; ran bash -n only", file=sys.stderr)
    return problems


# ---------------------------------------------------------------------------------------------
# Self-test: copy the repo's installers into a scratch tree, break one thing, expect a problem.


def self_test():
    failures = 0
    with tempfile.TemporaryDirectory() as scratch:
        def fresh():
            tree = os.path.join(scratch, "tree")
            shutil.rmtree(tree, ignore_errors=True)
            shutil.copytree(os.path.join(REPO, "installers"), os.path.join(tree, "installers"))
            for name in ("CMakeLists.txt", "README.md", ".dockerignore"):
                shutil.copy(os.path.join(REPO, name), tree)
            for name in ("cmake", "proto", "shared", "worker", "app", "tests", "bench",
                         "resources"):
                os.makedirs(os.path.join(tree, name))
            return tree

        def edit(path, old, new):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if old not in text:
                raise SystemExit(f"self-test: {old!r} not in {path}")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new, 1))

        def edit_yaml(path, change):
            with open(path, encoding="utf-8") as f:
                document = yaml.safe_load(f)
            change(document)
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump(document, f)

        docker = "installers/docker/Dockerfile"
        pod = lambda d: d["spec"]["template"]["spec"]  # noqa: E731
        cases = [
            ("clean tree", None, None),
            ("FROM :latest", docker, lambda p: edit(
                p, "FROM nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-ubuntu${UBUNTU_VERSION}",
                "FROM nvidia/cuda:latest")),
            ("untagged FROM", docker, lambda p: edit(
                p, "FROM nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-ubuntu${UBUNTU_VERSION}",
                "FROM ubuntu")),
            ("apt lists kept", docker, lambda p: edit(
                p, " \\\n && rm -rf /var/lib/apt/lists/*\nWORKDIR", "\nWORKDIR")),
            ("no USER", docker, lambda p: edit(p, "USER 10001:10001\n", "")),
            ("root USER", docker, lambda p: edit(p, "USER 10001:10001", "USER root")),
            ("USER after ENTRYPOINT", docker, lambda p: edit(p, "USER 10001:10001\n", "")
             or open(p, "a").write("USER 10001\n")),
            ("ADD of a URL", docker, lambda p: open(p, "a").write(
                "ADD https://example.com/x.tgz /tmp/\n")),
            ("COPY of a missing path", docker, lambda p: edit(
                p, "COPY cmake/ cmake/", "COPY cmake/ cmake/\nCOPY no-such-dir/ x/")),
            ("COPY of an ignored path", docker, lambda p: open(
                os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(p))),
                             ".dockerignore"), "a").write("bench\n")),
            ("shell-form ENTRYPOINT", docker, lambda p: edit(
                p, 'ENTRYPOINT ["/usr/bin/dipaco-worker"]', "ENTRYPOINT /usr/bin/dipaco-worker")),
            ("YAML syntax", "installers/kubernetes/job.yaml",
             lambda p: open(p, "a").write("  bad: [unclosed\n")),
            ("mount of an unknown volume", "installers/kubernetes/job.yaml",
             lambda p: edit_yaml(p, lambda d: pod(d)["containers"][0]["volumeMounts"][0]
                                 .update(name="nope"))),
            ("another image", "installers/kubernetes/daemonset.yaml",
             lambda p: edit_yaml(p, lambda d: pod(d)["containers"][0].update(
                 image="registry.example.com/dipaco/dipaco-worker:0.0.9"))),
            ("unknown Secret", "installers/kubernetes/job.yaml",
             lambda p: edit_yaml(p, lambda d: [v["secret"].update(secretName="other")
                                               for v in pod(d)["volumes"] if "secret" in v])),
            ("selector mismatch", "installers/kubernetes/daemonset.yaml",
             lambda p: edit_yaml(p, lambda d: d["spec"]["selector"]["matchLabels"].update(
                 extra="x"))),
            ("token_file off the Secret", "installers/kubernetes/configmap.yaml",
             lambda p: edit(p, 'token_file = "/var/run/secrets/dipaco/worker.token"',
                            'token_file = "/etc/dipaco/worker.token"')),
            ("bad TOML", "installers/kubernetes/configmap.yaml",
             lambda p: edit(p, "max_tasks = 0", "max_tasks = ")),
            ("no GPU", "installers/kubernetes/daemonset.yaml",
             lambda p: edit_yaml(p, lambda d: pod(d)["containers"][0]["resources"]["limits"]
                                 .pop("nvidia.com/gpu"))),
            ("Slurm syntax", "installers/slurm/dipaco-workers.sbatch",
             lambda p: open(p, "a").write("if then\n")),
            ("Slurm without GPU", "installers/slurm/dipaco-workers.sbatch",
             lambda p: edit(p, "#SBATCH --gres=gpu:1\n", "")),
            ("shellcheck warning", "installers/slurm/dipaco-workers.sbatch",
             lambda p: open(p, "a").write("never_used=1\n")),
        ]
        for name, target, breaker in cases:
            tree = fresh()
            if breaker:
                breaker(os.path.join(tree, target))
            # shellcheck is slow: only where a case is about shell scripts.
            found = lint_repo(tree, shellcheck=target is None or "slurm" in target).items
            expected_clean = breaker is None
            ok = (not found) if expected_clean else bool(found)
            print(f"{'ok  ' if ok else 'FAIL'} {name}: "
                  f"{'clean' if not found else found[0]}")
            failures += not ok
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self-test", action="store_true",
                        help="check that each rule catches a broken copy of the installers")
    parser.add_argument("--root", default=REPO, help="repository root (default: this repo)")
    options = parser.parse_args()
    if options.self_test:
        failures = self_test()
        print(f"lint-installers self-test: {'ok' if failures == 0 else f'{failures} FAILED'}")
        return 1 if failures else 0
    problems = lint_repo(options.root)
    for item in problems.items:
        print(item)
    print(f"lint-installers: {'ok' if not problems.items else f'{len(problems.items)} problem(s)'}")
    return 1 if problems.items else 0


if __name__ == "__main__":
    sys.exit(main())
