/**
 * A small validator for the OpenAPI (Swagger 2.0 and CRD v3) schemas KubeVirt, CDI and
 * the NAD CRD publish: types, required fields, enums, items, maps, references, and an
 * unknown-key check of its own (the specs set no additionalProperties: false, so an
 * unknown key would otherwise pass).
 */

export type Schema = {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
};

export type Definitions = Record<string, Schema>;

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function typeMatches(want: string, got: string): boolean {
  return want === got || (want === "number" && got === "integer");
}

/** Every problem of `value` against `schema`, as "PATH: what" lines. */
export function validate(defs: Definitions, schema: Schema, value: unknown, path = "$"): string[] {
  if (schema.$ref) {
    const name = schema.$ref.replace("#/definitions/", "");
    const target = defs[name];
    if (!target) return [`${path}: the schema refers to ${name}, which is not vendored`];
    return validate(defs, target, value, path);
  }
  const got = typeOf(value);
  const types = schema.type === undefined ? [] : [schema.type].flat();
  if (types.length > 0 && !types.some((t) => typeMatches(t, got))) {
    return [`${path}: expected ${types.join(" or ")}, got ${got}`];
  }
  const out: string[] = [];
  if (schema.enum && !schema.enum.includes(value)) {
    out.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if (got === "object") {
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) {
      if (!(key in object)) out.push(`${path}: missing required "${key}"`);
    }
    for (const [key, v] of Object.entries(object)) {
      const property = schema.properties?.[key];
      if (property) out.push(...validate(defs, property, v, `${path}.${key}`));
      else if (typeof schema.additionalProperties === "object") {
        out.push(...validate(defs, schema.additionalProperties, v, `${path}.${key}`));
      } else if (schema.properties && schema.additionalProperties !== true) {
        out.push(`${path}: unknown key "${key}"`);
      }
    }
  }
  if (got === "array" && schema.items) {
    (value as unknown[]).forEach((v, i) =>
      out.push(...validate(defs, schema.items!, v, `${path}[${i}]`))
    );
  }
  return out;
}
