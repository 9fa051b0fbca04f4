#!/usr/bin/env python3
"""Builds the OCSF and ECS JSON Schemas in schemas/ from the vendored definitions.

    generate.py extract-ocsf EXPORT.json    # OCSF 1.3.0 export -> ocsf-1.3.0/detection_finding.json
    generate.py extract-ecs FLAT.json VER   # ECS ecs_flat (as JSON) -> ecs-8.11/{ecs_flat.json,version}
    generate.py build                       # vendored files -> schemas/*.schema.json (default)
    generate.py check                       # examples/*.json against the built schemas (needs jsonschema)

Standard library only, except `check`, which imports the `jsonschema` package. Every file is
written with sorted keys, two-space indentation and a final newline, so running it again on the
same input gives byte-identical output. See SOURCE.md for what is taken and how it is mapped.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

VENDOR = Path(__file__).resolve().parent
SCHEMAS = VENDOR.parent

OCSF_VERSION = "1.3.0"
OCSF_DIR = VENDOR / f"ocsf-{OCSF_VERSION}"
OCSF_CLASS = "detection_finding"
OCSF_CLASS_UID = 2004
OCSF_CATEGORY_UID = 2
# Profiles applied to the class and to every object it references. An attribute that belongs
# to a profile is kept only when that profile is listed here; the required attributes of an
# applied profile become required (the cloud profile makes `cloud` required).
OCSF_PROFILES = ("cloud", "datetime", "host")
OCSF_OUT = SCHEMAS / f"ocsf-{OCSF_VERSION}-detection-finding.schema.json"

ECS_SERIES = "8.11"
ECS_DIR = VENDOR / f"ecs-{ECS_SERIES}"
ECS_OUT = SCHEMAS / f"ecs-{ECS_SERIES}-event.schema.json"
# Keys of an ecs_flat.yml field definition that are vendored; the rest (long description,
# Elasticsearch index settings such as ignore_above, doc_values, multi_fields) are dropped.
ECS_KEEP = (
    "allowed_values",
    "beta",
    "example",
    "expected_values",
    "level",
    "normalize",
    "object_type",
    "pattern",
    "required",
    "scaling_factor",
    "short",
    "type",
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://trailhound.dev/schemas/"


def dump(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def plain(html: str | None) -> str:
    """The text of an OCSF/ECS description without markup, on one line."""
    if not html:
        return ""
    text = re.sub(r"<[^>]+>", "", html)
    text = text.replace("&nbsp;", " ").replace("&amp;", "&")
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# OCSF


def ocsf_closure(export: dict, attributes: dict, seen: set[str], profiles=None) -> None:
    """Adds to `seen` every object reachable from `attributes` (only kept profiles if given)."""
    todo = [a for a in attributes.values() if a.get("type") == "object_t"]
    while todo:
        attr = todo.pop()
        if profiles is not None and not ocsf_kept(attr, profiles):
            continue
        name = attr["object_type"]
        if name in seen:
            continue
        seen.add(name)
        obj = export["objects"][name]
        todo.extend(a for a in obj.get("attributes", {}).values() if a.get("type") == "object_t")


def extract_ocsf(export_path: Path) -> None:
    export = load(export_path)
    if export.get("version") != OCSF_VERSION:
        sys.exit(f"{export_path}: version {export.get('version')!r}, want {OCSF_VERSION}")
    cls = export["classes"][OCSF_CLASS]
    if cls.get("uid") != OCSF_CLASS_UID or cls.get("category_uid") != OCSF_CATEGORY_UID:
        sys.exit(f"{export_path}: {OCSF_CLASS} is not class {OCSF_CLASS_UID} in category 2")
    seen: set[str] = set()
    ocsf_closure(export, cls["attributes"], seen)  # every profile, so OCSF_PROFILES can change
    subset = {
        "version": export["version"],
        "classes": {OCSF_CLASS: cls},
        "objects": {name: export["objects"][name] for name in sorted(seen)},
        "types": export["types"],
    }
    dump(OCSF_DIR / f"{OCSF_CLASS}.json", subset)


def ocsf_kept(attr: dict, profiles) -> bool:
    profile = attr.get("profile")
    return profile is None or profile in profiles


OCSF_BASE_TYPES = {
    "boolean_t": "boolean",
    "integer_t": "integer",
    "long_t": "integer",
    "float_t": "number",
    "string_t": "string",
    "json_t": None,  # any JSON value
}


def ocsf_def_name(obj: str) -> str:
    return obj.replace("/", "_")


def ocsf_enum_values(enum: dict, json_type: str | None):
    keys = list(enum)
    if json_type in ("integer", "number"):
        return sorted(int(k) for k in keys)
    return sorted(keys)


def ocsf_scalar(types: dict, type_name: str, enum: dict | None) -> dict:
    if type_name not in types:
        raise SystemExit(f"unknown OCSF type {type_name}")
    tdef = types[type_name]
    if type_name in OCSF_BASE_TYPES:
        json_type = OCSF_BASE_TYPES[type_name]
    else:
        parent = tdef.get("type")
        if parent not in OCSF_BASE_TYPES:
            raise SystemExit(f"OCSF type {type_name} derives from {parent!r}")
        json_type = OCSF_BASE_TYPES[parent]
    out: dict = {}
    if json_type is not None:
        out["type"] = json_type
    if enum:
        values = ocsf_enum_values(enum, json_type)
        if len(values) == 1:
            out["const"] = values[0]
        else:
            out["enum"] = values
    if "regex" in tdef:
        out["pattern"] = tdef["regex"]
    if "max_len" in tdef:
        out["maxLength"] = tdef["max_len"]
    if "range" in tdef:
        out["minimum"], out["maximum"] = tdef["range"]
    return out


def ocsf_attribute(types: dict, attr: dict) -> dict:
    out: dict = {}
    if attr.get("caption"):
        out["title"] = attr["caption"]
    enum = attr.get("enum")
    if enum:
        listed = ", ".join(
            f"{v} {enum[str(v)].get('caption', '')}".strip()
            for v in ocsf_enum_values(enum, "integer" if attr.get("type") in ("integer_t", "long_t") else None)
        )
        out["description"] = f"{plain(attr.get('description'))} Values: {listed}.".strip()
    if "@deprecated" in attr:
        out["deprecated"] = True
    if attr.get("type") == "object_t":
        item = {"$ref": f"#/$defs/{ocsf_def_name(attr['object_type'])}"}
    else:
        item = ocsf_scalar(types, attr["type"], enum)
    if attr.get("is_array"):
        out["type"] = "array"
        out["items"] = item
    else:
        out.update(item)
    return out


def ocsf_properties(types: dict, attributes: dict, profiles) -> tuple[dict, list[str]]:
    props, required = {}, []
    for name, attr in attributes.items():
        if not ocsf_kept(attr, profiles):
            continue
        props[name] = ocsf_attribute(types, attr)
        if attr.get("requirement") == "required":
            required.append(name)
    return props, sorted(required)


def ocsf_constraints(out: dict, constraints: dict | None, props: dict) -> None:
    if not constraints:
        return
    for kind, fields in sorted(constraints.items()):
        fields = [f for f in fields if f in props]
        if not fields:
            continue
        alts = [{"required": [f]} for f in fields]
        if kind == "at_least_one":
            out["anyOf"] = alts
        elif kind == "just_one":
            out["oneOf"] = alts
        else:
            raise SystemExit(f"unsupported OCSF constraint {kind}")


def build_ocsf() -> dict:
    data = load(OCSF_DIR / f"{OCSF_CLASS}.json")
    types, objects = data["types"], data["objects"]
    cls = data["classes"][OCSF_CLASS]
    profiles = set(OCSF_PROFILES)

    reached: set[str] = set()
    ocsf_closure(data, cls["attributes"], reached, profiles)

    defs = {}
    for name in sorted(reached):
        obj = objects[name]
        key = ocsf_def_name(name)
        if key in defs:
            raise SystemExit(f"two OCSF objects map to $defs/{key}")
        props, required = ocsf_properties(types, obj.get("attributes", {}), profiles)
        schema: dict = {"type": "object", "title": obj.get("caption", name)}
        if obj.get("description"):
            schema["description"] = plain(obj["description"])
        if props:
            schema["properties"] = props
        if required:
            schema["required"] = required
        if "@deprecated" in obj:
            schema["deprecated"] = True
        ocsf_constraints(schema, obj.get("constraints"), props)
        defs[key] = schema

    props, required = ocsf_properties(types, cls["attributes"], profiles)
    # The event's schema version is the one this file describes.
    props["metadata"]["properties"] = {"version": {"const": OCSF_VERSION}}
    activity = cls["attributes"]["activity_id"]["enum"]
    type_uid = cls["attributes"]["type_uid"]["enum"]
    rules = []
    for a in sorted(int(k) for k in activity):
        t = OCSF_CLASS_UID * 100 + a
        if str(t) not in type_uid:
            raise SystemExit(f"type_uid {t} for activity_id {a} is not in the class's enum")
        rules.append(
            {
                "if": {"properties": {"activity_id": {"const": a}}, "required": ["activity_id"]},
                "then": {"properties": {"type_uid": {"const": t}}},
            }
        )
    schema = {
        "$schema": DRAFT,
        "$id": ID_BASE + OCSF_OUT.name,
        "title": f"OCSF {OCSF_VERSION} {cls['caption']} (class_uid {cls['uid']})",
        "description": (
            f"One OCSF {OCSF_VERSION} {cls['caption']} event ({cls['category_name']} category "
            f"{cls['category_uid']}, class {cls['uid']}) with the profiles "
            f"{', '.join(OCSF_PROFILES)} applied. Generated by schemas/vendor/generate.py from "
            f"schemas/vendor/ocsf-{OCSF_VERSION}/{OCSF_CLASS}.json; do not edit. "
            "Attributes outside the class go in `unmapped`; objects below the event accept "
            "extra attributes. type_uid must equal class_uid * 100 + activity_id. "
            + plain(cls.get("description"))
        ),
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
        "allOf": rules,
        "$defs": defs,
    }
    ocsf_constraints(schema, cls.get("constraints"), props)
    return schema


# --------------------------------------------------------------------------------------------
# ECS


def extract_ecs(flat_path: Path, version: str) -> None:
    if not version.startswith(ECS_SERIES + "."):
        sys.exit(f"ECS version {version} is not in the {ECS_SERIES} series")
    flat = load(flat_path)
    if "@timestamp" not in flat or "event.kind" not in flat:
        sys.exit(f"{flat_path}: not an ecs_flat field list")
    out = {}
    for name, field in flat.items():
        if field.get("flat_name", name) != name:
            sys.exit(f"{flat_path}: {name} has flat_name {field.get('flat_name')}")
        out[name] = {k: field[k] for k in ECS_KEEP if k in field}
    dump(ECS_DIR / "ecs_flat.json", out)
    (ECS_DIR / "version").write_text(version + "\n", encoding="utf-8")


ECS_TYPES = {
    "keyword": "string",
    "constant_keyword": "string",
    "wildcard": "string",
    "text": "string",
    "match_only_text": "string",
    "ip": "string",
    "date": "string",
    "version": "string",
    "long": "integer",
    "integer": "integer",
    "short": "integer",
    "byte": "integer",
    "unsigned_long": "integer",
    "float": "number",
    "double": "number",
    "half_float": "number",
    "scaled_float": "number",
    "boolean": "boolean",
    "object": "object",
    "flattened": "object",
    "nested": "object",
}


def ecs_leaf(name: str, field: dict) -> dict:
    ftype = field["type"]
    if ftype == "geo_point":
        # {"lat":…, "lon":…}, "lat,lon", a geohash or WKT string, or [lon, lat].
        base: dict = {"type": ["object", "string", "array"]}
    elif ftype == "ip":
        base = {"$ref": "#/$defs/ip"}
    elif ftype in ECS_TYPES:
        base = {"type": ECS_TYPES[ftype]}
    else:
        raise SystemExit(f"ECS field {name}: unknown type {ftype}")
    if ftype == "object" and field.get("object_type") in ECS_TYPES:
        base["additionalProperties"] = {"type": ECS_TYPES[field["object_type"]]}
    if field.get("allowed_values"):
        base["enum"] = [v["name"] for v in field["allowed_values"]]
    if field.get("pattern"):
        base["pattern"] = field["pattern"]
    return base


def ecs_described(field: dict | None, schema: dict) -> dict:
    if not field:
        return schema
    out = dict(schema)
    desc = plain(field.get("short"))
    if field.get("allowed_values"):
        desc += " Allowed values: " + ", ".join(v["name"] for v in field["allowed_values"]) + "."
    if field.get("expected_values"):
        desc += " Expected values: " + ", ".join(field["expected_values"]) + "."
    if desc:
        out["description"] = desc.strip()
    return out


def ecs_required(node: dict) -> bool:
    """A field marked required, or a plain object holding one (`ecs` for `ecs.version`)."""
    if node["field"]:
        return bool(node["field"].get("required"))
    return any(ecs_required(c) for c in node["children"].values())


def ecs_node(path: str, node: dict, defs: dict) -> dict:
    field, children = node["field"], node["children"]
    many = bool(field) and ("array" in field.get("normalize", []) or field["type"] == "nested")
    if not children:
        base = ecs_leaf(path, field)
        if many:
            if field["type"] == "nested":
                schema = {"type": ["object", "array"], "items": {"type": "object"}}
            else:
                schema = {"anyOf": [base, {"type": "array", "items": base}]}
        else:
            schema = base
        return ecs_described(field, schema)
    obj: dict = {"type": "object"}
    props = {k: ecs_node(f"{path}.{k}" if path else k, v, defs) for k, v in children.items()}
    obj["properties"] = props
    required = sorted(k for k, v in children.items() if ecs_required(v))
    if required:
        obj["required"] = required
    if field and field["type"] not in ("object", "nested", "flattened"):
        raise SystemExit(f"ECS field {path} has type {field['type']} and sub-fields")
    if many:
        defs[path] = obj
        ref = {"$ref": f"#/$defs/{path}"}
        schema = {"anyOf": [ref, {"type": "array", "items": ref}]}
    else:
        schema = obj
    return ecs_described(field, schema)


def build_ecs() -> dict:
    flat = load(ECS_DIR / "ecs_flat.json")
    version = (ECS_DIR / "version").read_text(encoding="utf-8").strip()
    tree: dict = {"field": None, "children": {}}
    for name in sorted(flat):
        node = tree
        for part in name.split("."):
            node = node["children"].setdefault(part, {"field": None, "children": {}})
        node["field"] = flat[name]
    defs: dict = {
        "ip": {
            "title": "ECS ip",
            "description": "An IPv4 or IPv6 address.",
            "type": "string",
            "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
        }
    }
    root = ecs_node("", tree, defs)
    # ECS records the version an event conforms to; this schema is for one version.
    root["properties"]["ecs"]["properties"]["version"]["const"] = version
    kind = flat["event.kind"]["allowed_values"]
    return {
        "$schema": DRAFT,
        "$id": ID_BASE + ECS_OUT.name,
        "title": f"Elastic Common Schema {version} document",
        "description": (
            f"One ECS {version} document in nested form, built from ecs_flat.yml "
            f"({len(flat)} fields) by schemas/vendor/generate.py from schemas/vendor/ecs-"
            f"{ECS_SERIES}/ecs_flat.json; do not edit. Known fields are typed; custom fields "
            "are allowed. event.kind is one of: "
            + ", ".join(v["name"] for v in kind)
            + "."
        ),
        "type": "object",
        "properties": root["properties"],
        "required": root["required"],
        "$defs": defs,
    }


# --------------------------------------------------------------------------------------------


def build() -> None:
    dump(OCSF_OUT, build_ocsf())
    dump(ECS_OUT, build_ecs())


def check() -> None:
    import jsonschema  # only this sub-command needs it

    failed = False
    for fmt, schema_path in (("ocsf", OCSF_OUT), ("ecs", ECS_OUT)):
        schema = load(schema_path)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        for expect in ("valid", "invalid"):
            path = VENDOR / "examples" / f"{fmt}-{expect}.json"
            errors = sorted(validator.iter_errors(load(path)), key=lambda e: list(e.absolute_path))
            ok = not errors if expect == "valid" else bool(errors)
            print(f"{'ok  ' if ok else 'FAIL'} {path.relative_to(SCHEMAS.parent)}: {len(errors)} error(s)")
            for e in errors:
                where = "/".join(str(p) for p in e.absolute_path) or "(root)"
                print(f"       {where}: {e.message[:200]}")
            failed |= not ok
    if failed:
        sys.exit(1)


def main(argv: list[str]) -> None:
    cmd = argv[1] if len(argv) > 1 else "build"
    if cmd == "extract-ocsf" and len(argv) == 3:
        extract_ocsf(Path(argv[2]))
    elif cmd == "extract-ecs" and len(argv) == 4:
        extract_ecs(Path(argv[2]), argv[3])
    elif cmd == "build" and len(argv) <= 2:
        build()
    elif cmd == "check" and len(argv) == 2:
        check()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
