//! The Kubernetes manifests under `deploy/` (a kustomize layout: `base/`, `overlays/*`,
//! `components/*`), rendered the way users apply them and validated offline:
//!
//! - every entry point (a directory with a `kustomization.yaml` that is not a `Component`)
//!   renders with `kubectl kustomize`, and so does every component on top of
//!   `overlays/remote-write`;
//! - every rendered object validates: core kinds with kubernetes-validate `--strict`, custom
//!   resources against their CRD's `openAPIV3Schema` from `../shared/data/k8s-crds`
//!   (`scripts/validate-manifests.py`), and the kinds and counts validated are the ones
//!   expected here, so nothing is skipped silently; a broken copy is rejected;
//! - every `promcast.yml` in a rendered ConfigMap passes `promcast check-config`;
//! - the PrometheusRule carries exactly the groups of `deploy/alerting-rules.yml`;
//! - promcast's pods use the kustomization's image, run as 65534 under Pod Security
//!   "restricted" with a read-only root filesystem and a volume at `/var/lib/promcast`;
//! - neither a rendered object nor a file of the repository names the placeholder image the
//!   flat manifests used.
//!
//! Needs `kubectl` (>= 1.27, kustomize built in; no cluster) and the Python packages
//! kubernetes-validate, jsonschema and pyyaml under `$PROMCAST_PYTHONPATH`
//! (`./scripts/test.sh` installs them into the target directory and sets it).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_yaml_ng::Value;

const PROMCAST: &str = env!("CARGO_BIN_EXE_promcast");

/// The placeholder image reference of the old flat manifests, spelled so that this file
/// does not contain it.
const PLACEHOLDER: &str = concat!("ghcr.io/", "example");

/// Kinds and how many of each every entry point renders.
const ENTRY_POINTS: &[(&str, &[(&str, usize)])] = &[
    ("base", BASE_KINDS),
    ("overlays/gpu", BASE_KINDS),
    (
        "overlays/prometheus-operator",
        &[
            ("ClusterRole", 1),
            ("ClusterRoleBinding", 1),
            ("ConfigMap", 2), // promcast.yml, the Grafana dashboard
            ("Deployment", 1),
            ("PodDisruptionBudget", 1),
            ("Prometheus", 1),
            ("PrometheusRule", 1),
            ("Service", 1),
            ("ServiceAccount", 2), // promcast, prometheus
            ("ServiceMonitor", 1),
        ],
    ),
    ("overlays/remote-write", BASE_KINDS),
    (
        "overlays/sharded",
        &[
            ("ConfigMap", 1),
            ("PodDisruptionBudget", 1),
            ("Service", 1),
            ("ServiceAccount", 1),
            ("StatefulSet", 1),
        ],
    ),
    (
        "overlays/sidecar",
        &[
            ("ClusterRole", 1),
            ("ClusterRoleBinding", 1),
            ("ConfigMap", 2), // promcast.yml; prometheus.yml and rules.yml
            ("Deployment", 1),
            ("PodDisruptionBudget", 1),
            ("ScaledObject", 1),
            ("Service", 1),
            ("ServiceAccount", 1),
        ],
    ),
];

const BASE_KINDS: &[(&str, usize)] = &[
    ("ConfigMap", 1),
    ("Deployment", 1),
    ("PodDisruptionBudget", 1),
    ("Service", 1),
    ("ServiceAccount", 1),
];

/// Every component, and the kinds it adds to `overlays/remote-write`.
const COMPONENTS: &[(&str, &[(&str, usize)])] = &[
    ("grafana-dashboard", &[("ConfigMap", 1)]),
    (
        "hpa-prometheus-adapter",
        &[("ConfigMap", 1), ("HorizontalPodAutoscaler", 1)],
    ),
    ("keda/external", &[("ScaledObject", 1)]),
    ("keda/metrics-api", &[("ScaledObject", 1)]),
    ("keda/prometheus", &[("ScaledObject", 1)]),
    ("persistent-storage", &[("PersistentVolumeClaim", 1)]),
    (
        "prometheus",
        &[
            ("ClusterRole", 1),
            ("ClusterRoleBinding", 1),
            ("Prometheus", 1),
            ("ServiceAccount", 1),
        ],
    ),
    ("prometheusrule", &[("PrometheusRule", 1)]),
    ("servicemonitor", &[("ServiceMonitor", 1)]),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn kubectl() -> PathBuf {
    common::find_program("kubectl").unwrap_or_else(|| {
        panic!(
            "kubectl not found on PATH or at /usr/bin/kubectl: tests/deploy.rs renders deploy/ \
             with `kubectl kustomize` (kubectl >= 1.27, kustomize built in; no cluster needed). \
             Install kubectl, e.g. from https://dl.k8s.io/release/v1.32.0/bin/linux/amd64/kubectl"
        )
    })
}

/// `$PROMCAST_PYTHONPATH`, else the kubernetes-validate directory scripts/test.sh makes
/// beside the build (target/kubernetes-validate-<version>).
fn python_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMCAST_PYTHONPATH") {
        return PathBuf::from(p);
    }
    // CARGO_BIN_EXE_promcast is <target>/<profile>/promcast.
    let target = Path::new(PROMCAST).parent().and_then(Path::parent);
    let found = target.and_then(|t| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(t)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("kubernetes-validate-"))
                    && p.join("kubernetes_validate").is_dir()
            })
            .collect();
        dirs.sort();
        dirs.pop()
    });
    found.unwrap_or_else(|| {
        panic!(
            "PROMCAST_PYTHONPATH is not set and no kubernetes-validate-* directory is in the \
             target directory: run ./scripts/test.sh (it installs kubernetes-validate, jsonschema \
             and pyyaml from PyPI under the target directory), or install them with \
             `python3 -m pip install --target DIR kubernetes-validate jsonschema pyyaml` and set \
             PROMCAST_PYTHONPATH=DIR"
        )
    })
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Every directory under deploy/ holding a kustomization.yaml, with its `kind`.
fn kustomizations() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.file_name().is_some_and(|n| n == "kustomization.yaml") {
                out.push(p.parent().unwrap().to_path_buf());
            }
        }
    }
    let mut dirs = Vec::new();
    walk(&deploy(), &mut dirs);
    let mut out: Vec<(String, String)> = dirs
        .iter()
        .map(|d| {
            let k: Value = serde_yaml_ng::from_str(
                &std::fs::read_to_string(d.join("kustomization.yaml")).unwrap(),
            )
            .unwrap_or_else(|e| panic!("{}/kustomization.yaml: {e}", d.display()));
            let rel = d
                .strip_prefix(deploy())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let kind = k["kind"].as_str().unwrap_or("Kustomization").to_owned();
            (rel, kind)
        })
        .collect();
    out.sort();
    out
}

fn entry_points() -> Vec<String> {
    kustomizations()
        .into_iter()
        .filter(|(_, kind)| kind != "Component")
        .map(|(d, _)| d)
        .collect()
}

/// `kubectl kustomize DIR`.
fn render(dir: &Path) -> String {
    let out = run(Command::new(kubectl()).arg("kustomize").arg(dir));
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Renders `overlays/remote-write` with `component` through a kustomization in a temporary
/// directory (kustomize takes only relative paths to other kustomizations).
fn render_component(component: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let up = "../".repeat(dir.components().count() - 1);
    let deploy = deploy().canonicalize().unwrap();
    let rel = |p: &str| format!("{up}{}/{p}", deploy.strip_prefix("/").unwrap().display());
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            rel("overlays/remote-write"),
            rel(&format!("components/{component}")),
        ),
    )
    .unwrap();
    render(&dir)
}

fn objects(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds_of(objects: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in objects {
        *m.entry(o["kind"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    m
}

fn kinds(table: &[(&str, usize)]) -> BTreeMap<String, usize> {
    table.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// Runs scripts/validate-manifests.py on `yaml`: (success, its output, the kinds of the
/// objects it reported valid).
fn validate(yaml: &str) -> (bool, String, BTreeMap<String, usize>) {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("rendered.yaml");
    std::fs::write(&file, yaml).unwrap();
    let python = common::find_program("python3")
        .unwrap_or_else(|| panic!("python3 not found: scripts/validate-manifests.py needs it"));
    let out = run(Command::new(python)
        .env("PYTHONPATH", python_path())
        .arg(root().join("scripts/validate-manifests.py"))
        .arg("--crds")
        .arg(root().join("../shared/data/k8s-crds"))
        .arg(&file));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "scripts/validate-manifests.py could not run ({}): {stdout}{stderr}",
        out.status
    );
    let mut valid = BTreeMap::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("ok ") {
            let kind = rest.split(' ').next().unwrap().to_owned();
            *valid.entry(kind).or_default() += 1;
        }
    }
    (out.status.success(), format!("{stdout}{stderr}"), valid)
}

/// Renders, validates and checks the kinds of `what`.
fn render_and_validate(what: &str, yaml: &str, want: &BTreeMap<String, usize>) -> Vec<Value> {
    let objs = objects(yaml);
    assert_eq!(&kinds_of(&objs), want, "{what}: rendered kinds");
    let (ok, output, valid) = validate(yaml);
    eprintln!("{what}:\n{output}");
    assert!(ok, "{what}: invalid objects:\n{output}");
    assert_eq!(&valid, want, "{what}: the objects validated:\n{output}");
    objs
}

#[test]
fn every_entry_point_and_component_renders_and_validates() {
    let found = kustomizations();
    let want_entries: Vec<&str> = ENTRY_POINTS.iter().map(|(d, _)| *d).collect();
    assert_eq!(entry_points(), want_entries, "entry points under deploy/");
    let want_components: Vec<&str> = COMPONENTS.iter().map(|(d, _)| *d).collect();
    let components: Vec<String> = found
        .iter()
        .filter(|(_, kind)| kind == "Component")
        .filter_map(|(d, _)| d.strip_prefix("components/").map(str::to_owned))
        .collect();
    assert_eq!(
        components, want_components,
        "components under deploy/components/"
    );

    for (dir, table) in ENTRY_POINTS {
        let yaml = render(&deploy().join(dir));
        render_and_validate(dir, &yaml, &kinds(table));
    }
    for (component, table) in COMPONENTS {
        let mut want = kinds(BASE_KINDS);
        for (k, n) in *table {
            *want.entry(k.to_string()).or_default() += n;
        }
        let yaml = render_component(component);
        render_and_validate(
            &format!("overlays/remote-write + components/{component}"),
            &yaml,
            &want,
        );
    }
}

/// The validator can fail: a copy of the sidecar overlay with one broken field in a
/// Deployment, a ScaledObject and a ConfigMap, plus an object of an unknown kind, is
/// rejected, and each broken object is named.
#[test]
fn validator_rejects_broken_objects() {
    let mut objs = objects(&render(&deploy().join("overlays/sidecar")));
    for o in &mut objs {
        match o["kind"].as_str().unwrap() {
            // A misspelled field (strict: unknown fields are errors).
            "Deployment" => {
                let spec = o["spec"]["template"]["spec"].as_mapping_mut().unwrap();
                let v = spec.remove("terminationGracePeriodSeconds").unwrap();
                spec.insert(Value::from("terminationGracePeriodSecond"), v);
            }
            // A wrong type in a custom resource.
            "ScaledObject" => o["spec"]["pollingInterval"] = Value::from("15s"),
            // A missing required field.
            "Service" => {
                o["spec"]["ports"][0]
                    .as_mapping_mut()
                    .unwrap()
                    .remove("port");
            }
            _ => {}
        }
    }
    objs.push(
        serde_yaml_ng::from_str("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
            .unwrap(),
    );
    let yaml = objs
        .iter()
        .map(|o| serde_yaml_ng::to_string(o).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    let (ok, output, valid) = validate(&yaml);
    assert!(!ok, "the validator accepted broken objects:\n{output}");
    for (kind, detail) in [
        ("Deployment", "terminationGracePeriodSecond"),
        ("ScaledObject", "pollingInterval"),
        ("Service", "port"),
        ("Widget", "no schema"),
    ] {
        assert!(
            output
                .lines()
                .any(|l| l.starts_with(&format!("FAIL {kind} ")) && l.contains(detail)),
            "no FAIL line for the broken {kind} ({detail}):\n{output}"
        );
        assert!(!valid.contains_key(kind), "{kind} passed:\n{output}");
    }
    // The objects left alone still pass.
    assert_eq!(valid.get("ConfigMap"), Some(&2), "{output}");
}

/// The promcast.yml of every rendered ConfigMap passes `promcast check-config`, and points
/// storage.path at the volume mounted at /var/lib/promcast.
#[test]
fn every_rendered_promcast_config_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    for dir in entry_points() {
        for o in objects(&render(&deploy().join(&dir))) {
            if o["kind"].as_str() != Some("ConfigMap") {
                continue;
            }
            let Some(yml) = o["data"]["promcast.yml"].as_str() else {
                continue;
            };
            let name = o["metadata"]["name"].as_str().unwrap();
            let file = tmp
                .path()
                .join(format!("{}-{name}.yml", dir.replace('/', "-")));
            std::fs::write(&file, yml).unwrap();
            let out = run(Command::new(PROMCAST).arg("check-config").arg(&file));
            assert!(
                out.status.success(),
                "{dir}: promcast check-config on ConfigMap {name}'s promcast.yml failed: {}{}\n{yml}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let cfg: Value = serde_yaml_ng::from_str(yml).unwrap();
            assert_eq!(
                cfg["storage"]["path"].as_str(),
                Some("/var/lib/promcast"),
                "{dir}: ConfigMap {name}: storage.path"
            );
            checked.push(dir.clone());
        }
    }
    // One per entry point: every one runs promcast.
    assert_eq!(checked, entry_points(), "configs checked");
}

#[test]
fn prometheus_rule_carries_exactly_the_alerting_rules() {
    let rules: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(deploy().join("alerting-rules.yml")).unwrap(),
    )
    .unwrap();
    let objs = objects(&render(&deploy().join("overlays/prometheus-operator")));
    let pr: Vec<_> = objs
        .iter()
        .filter(|o| o["kind"].as_str() == Some("PrometheusRule"))
        .collect();
    assert_eq!(pr.len(), 1);
    assert!(rules["groups"].as_sequence().is_some_and(|g| !g.is_empty()));
    assert_eq!(
        pr[0]["spec"]["groups"], rules["groups"],
        "components/prometheusrule/prometheusrule.yaml's groups differ from deploy/alerting-rules.yml's"
    );
}

/// The image an entry point's kustomization (or the first kustomization it builds on that
/// sets one) gives promcast: `newName:newTag` of its last `images:` entry.
fn expected_image(dir: &Path) -> String {
    let k: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    if let Some(last) = k["images"].as_sequence().and_then(|s| s.last()) {
        return format!(
            "{}:{}",
            last["newName"].as_str().expect("images[].newName"),
            last["newTag"].as_str().expect("images[].newTag")
        );
    }
    k["resources"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str())
        .map(|r| dir.join(r))
        .find(|d| d.join("kustomization.yaml").is_file())
        .map(|d| expected_image(&d))
        .unwrap_or_else(|| panic!("{}: no images: entry", dir.display()))
}

/// Pod Security Standards "restricted" (the checks that apply to these pods).
fn assert_restricted(what: &str, pod: &Value) {
    let psc = &pod["securityContext"];
    assert_eq!(
        psc["runAsNonRoot"].as_bool(),
        Some(true),
        "{what}: pod runAsNonRoot"
    );
    assert_eq!(
        psc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault"),
        "{what}: pod seccompProfile"
    );
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[key].as_bool(), Some(true), "{what}: {key}");
    }
    for v in pod["volumes"].as_sequence().into_iter().flatten() {
        let m = v.as_mapping().unwrap();
        let kind: Vec<&str> = m
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| *k != "name")
            .collect();
        assert!(
            kind.iter().all(|k| [
                "configMap",
                "emptyDir",
                "persistentVolumeClaim",
                "secret",
                "projected",
                "downwardAPI",
                "ephemeral",
                "csi"
            ]
            .contains(k)),
            "{what}: volume {v:?} is not allowed under restricted"
        );
    }
    let containers = pod["containers"].as_sequence().unwrap();
    for c in containers {
        let name = c["name"].as_str().unwrap();
        let sc = &c["securityContext"];
        assert_eq!(
            sc["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{what}: container {name}: allowPrivilegeEscalation"
        );
        assert_ne!(sc["privileged"].as_bool(), Some(true), "{what}: {name}");
        assert_ne!(
            sc["runAsUser"].as_u64(),
            Some(0),
            "{what}: {name} runs as root"
        );
        assert!(
            sc["capabilities"]["drop"]
                .as_sequence()
                .is_some_and(|d| d.iter().any(|x| x.as_str() == Some("ALL"))),
            "{what}: container {name}: capabilities.drop [ALL]"
        );
        assert!(
            sc["capabilities"]["add"]
                .as_sequence()
                .is_none_or(|a| a.iter().all(|x| x.as_str() == Some("NET_BIND_SERVICE"))),
            "{what}: container {name}: capabilities.add"
        );
        assert_eq!(
            sc["readOnlyRootFilesystem"].as_bool(),
            Some(true),
            "{what}: container {name}: readOnlyRootFilesystem"
        );
        for p in c["ports"].as_sequence().into_iter().flatten() {
            assert!(p["hostPort"].is_null(), "{what}: {name}: hostPort");
        }
    }
}

#[test]
fn promcast_pods_use_the_image_and_run_restricted() {
    let mut pods = 0;
    for dir in entry_points() {
        let image = expected_image(&deploy().join(&dir));
        let objs = objects(&render(&deploy().join(&dir)));
        let config_maps: Vec<&str> = objs
            .iter()
            .filter(|o| o["kind"].as_str() == Some("ConfigMap"))
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        for o in &objs {
            let kind = o["kind"].as_str().unwrap();
            if !["Deployment", "StatefulSet"].contains(&kind) {
                continue;
            }
            let what = format!("{dir}: {kind} {}", o["metadata"]["name"].as_str().unwrap());
            let pod = &o["spec"]["template"]["spec"];
            let promcast = pod["containers"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|c| c["name"].as_str() == Some("promcast"))
                .unwrap_or_else(|| panic!("{what}: no container promcast"));
            pods += 1;
            assert_eq!(
                promcast["image"].as_str(),
                Some(image.as_str()),
                "{what}: image"
            );
            assert_restricted(&what, pod);
            let psc = &pod["securityContext"];
            for key in ["runAsUser", "runAsGroup", "fsGroup"] {
                assert_eq!(psc[key].as_u64(), Some(65534), "{what}: pod {key}");
            }
            let args: Vec<&str> = promcast["args"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter_map(|a| a.as_str())
                .collect();
            assert_eq!(args[0], "serve", "{what}: {args:?}");
            assert!(
                args.contains(&"--config=/etc/promcast/promcast.yml")
                    && args.contains(&"--web.listen-address=0.0.0.0:9201"),
                "{what}: {args:?}"
            );
            for (probe, path) in [
                ("livenessProbe", "/-/healthy"),
                ("readinessProbe", "/-/ready"),
            ] {
                assert_eq!(
                    promcast[probe]["httpGet"]["path"].as_str(),
                    Some(path),
                    "{what}: {probe}"
                );
            }
            // The config from a rendered ConfigMap at /etc/promcast, snapshots on a volume
            // at /var/lib/promcast (the pod's own, or a claim template).
            let mounts = promcast["volumeMounts"].as_sequence().unwrap();
            let volume_at = |path: &str| {
                mounts
                    .iter()
                    .find(|m| m["mountPath"].as_str() == Some(path))
                    .and_then(|m| m["name"].as_str())
                    .unwrap_or_else(|| panic!("{what}: nothing mounted at {path}"))
            };
            let volumes = pod["volumes"].as_sequence().unwrap();
            let volume = |name: &str| volumes.iter().find(|v| v["name"].as_str() == Some(name));
            let config = volume(volume_at("/etc/promcast")).expect("the config volume");
            assert!(
                config["configMap"]["name"]
                    .as_str()
                    .is_some_and(|n| config_maps.contains(&n)),
                "{what}: the config volume names no rendered ConfigMap: {config:?}"
            );
            let data = volume_at("/var/lib/promcast");
            let claimed = o["spec"]["volumeClaimTemplates"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|t| t["metadata"]["name"].as_str() == Some(data));
            assert!(
                volume(data).is_some() || claimed,
                "{what}: no volume {data} for /var/lib/promcast"
            );
        }
    }
    // A Deployment or StatefulSet per entry point.
    assert_eq!(pods, ENTRY_POINTS.len());
    // The base's own image is the one scripts/image.sh builds.
    assert_eq!(
        expected_image(&deploy().join("base")),
        "localhost/promcast:0.1.0"
    );
}

#[test]
fn no_placeholder_image_anywhere() {
    for dir in entry_points() {
        let yaml = render(&deploy().join(&dir));
        assert!(!yaml.contains(PLACEHOLDER), "{dir} renders {PLACEHOLDER}");
    }
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let name = e.file_name();
            if name == ".git" || name == "target" {
                continue;
            }
            let t = e.file_type().unwrap();
            if t.is_dir() {
                walk(&p, out);
            } else if t.is_file() {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(root(), &mut files);
    assert!(files.len() > 100, "{} files", files.len());
    let needle = PLACEHOLDER.as_bytes();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} names {PLACEHOLDER}",
            f.display()
        );
    }
}
