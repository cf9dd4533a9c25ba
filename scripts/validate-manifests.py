#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests offline (tests/deploy.rs runs it on the output of
`kubectl kustomize` for every entry point under deploy/).

    PYTHONPATH=$PROMCAST_PYTHONPATH python3 scripts/validate-manifests.py \
        --crds ../shared/data/k8s-crds [--kubernetes-version 1.32] FILE... (- for stdin)

- Core resources (Deployment, Service, ConfigMap, ...): the schemas bundled with the PyPI
  package kubernetes-validate, strict (an unknown field is an error).
- Custom resources: the `spec.versions[].schema.openAPIV3Schema` of their CRD in --crds
  (one CRD per file, as the operators ship them), with Python jsonschema, as strict as the
  core schemas: an object schema that lists `properties` and does not say
  `x-kubernetes-preserve-unknown-fields` admits no other field (the API server would prune
  it silently, which hides typos). `nullable` and `x-kubernetes-int-or-string` are honoured;
  CEL rules (`x-kubernetes-validations`) are not evaluated.
- An object of a kind with no schema is an error, never skipped.

Prints one line per object, `ok KIND NAMESPACE/NAME: HOW` or `FAIL KIND NAMESPACE/NAME:
WHERE: WHY`, then a summary; exits 1 if any object failed, 2 on a usage or setup error.
"""

import argparse
import copy
import os
import sys

try:
    import jsonschema
    import kubernetes_validate
    import yaml
except ImportError as e:  # pragma: no cover - setup problem, reported plainly
    sys.exit(
        f"validate-manifests.py: {e}; install with scripts/test.sh (it puts kubernetes-validate, "
        "jsonschema and pyyaml under $PROMCAST_PYTHONPATH) and run with "
        "PYTHONPATH=$PROMCAST_PYTHONPATH"
    )


def strict_openapi(node):
    """An OpenAPI v3 schema (a CRD's) as a JSON schema that rejects unknown fields."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: strict_openapi(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = [strict_openapi(s) for s in value] if isinstance(value, list) else strict_openapi(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [strict_openapi(s) for s in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def load_crds(directory):
    """{(group, version, kind): (validator, file name)} for every served version."""
    crds = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(directory, name)) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for v in spec["versions"]:
                    if not v.get("served", True):
                        continue
                    schema = strict_openapi(v["schema"]["openAPIV3Schema"])
                    key = (spec["group"], v["name"], spec["names"]["kind"])
                    crds[key] = (jsonschema.Draft7Validator(schema), name)
    return crds


def where(error):
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "(top level)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crds", required=True, help="directory of CustomResourceDefinitions")
    ap.add_argument("--kubernetes-version", default="1.32")
    ap.add_argument("files", nargs="+", help="multi-document YAML files; - reads stdin")
    args = ap.parse_args()

    crds = load_crds(args.crds)
    if not crds:
        print(f"validate-manifests.py: no CustomResourceDefinition in {args.crds}", file=sys.stderr)
        return 2

    ok = failed = 0
    for file in args.files:
        text = sys.stdin.read() if file == "-" else open(file).read()
        for obj in yaml.safe_load_all(text):
            if obj is None:
                continue
            kind = obj.get("kind", "?")
            meta = obj.get("metadata") or {}
            name = f"{meta.get('namespace', '')}/{meta.get('name', '?')}"
            label = f"{kind} {name}"
            group, _, version = obj.get("apiVersion", "").rpartition("/")
            crd = crds.get((group, version, kind))
            if crd is not None:
                validator, crd_file = crd
                errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
                if errors:
                    failed += 1
                    for e in errors:
                        print(f"FAIL {label}: {where(e)}: {e.message}")
                else:
                    ok += 1
                    print(f"ok {label}: CRD {crd_file} {group}/{version}")
                continue
            try:
                got = kubernetes_validate.validate(obj, args.kubernetes_version, strict=True)
                ok += 1
                print(f"ok {label}: kubernetes-validate {got} --strict")
            except kubernetes_validate.ValidationError as e:
                failed += 1
                print(f"FAIL {label}: {where(e)}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError:
                failed += 1
                print(
                    f"FAIL {label}: no schema for {obj.get('apiVersion')} {kind}: neither a "
                    f"Kubernetes {args.kubernetes_version} kind nor a CRD in {args.crds}"
                )
    print(f"{ok} objects valid, {failed} invalid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
