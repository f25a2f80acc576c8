/**
 * A client's JSON schema, checked before it reaches the grammar engine: it must be a valid schema
 * (ajv compiles it) and use only keywords the grammar enforces, so nothing a client asks for is
 * silently ignored. Then it is prepared for generation: integers without bounds get JavaScript's
 * safe-integer range (a digit run must end somewhere), and `$defs` move to the root under a
 * prefix so several schemas can live in one grammar.
 */
import { Ajv } from 'ajv';
import { invalidRequest } from '../errors.ts';

/** Keywords xgrammar turns into grammar rules. */
const ENFORCED = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'prefixItems', 'minItems', 'maxItems',
  'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref', '$defs', 'definitions',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern', 'format',
]);
/** Keywords that only describe (no constraint to enforce). */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly']);
/** Keywords whose value is a map of subschemas, or a list of them, or one. */
const SCHEMA_MAPS = new Set(['properties', '$defs', 'definitions']);
const SCHEMA_LISTS = new Set(['anyOf', 'oneOf', 'allOf', 'prefixItems']);
const SCHEMA_ONE = new Set(['items', 'additionalProperties']);

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
type Schema = Record<string, unknown>;

const ajv = new Ajv({ strict: false, allErrors: false, validateFormats: false });

/**
 * Throws a 400 naming `param` when the schema is invalid or, if a grammar will `enforce` it, uses a
 * keyword the grammar cannot enforce.
 */
export function checkSchema(schema: unknown, param: string, enforce: boolean): asserts schema is Schema {
  if (!isObject(schema)) throw invalidRequest('A JSON schema must be an object.', param);
  try {
    ajv.compile(schema);
  } catch (err) {
    throw invalidRequest(`Invalid JSON schema: ${err instanceof Error ? err.message : String(err)}`, param);
  }
  if (!enforce) return;
  walk(schema, param, (node, path) => {
    for (const key of Object.keys(node)) {
      if (ENFORCED.has(key) || ANNOTATIONS.has(key)) continue;
      throw invalidRequest(`JSON schema keyword '${key}' cannot be enforced during generation; remove it or describe the constraint in 'description'.`, `${path}.${key}`);
    }
  });
}

/** The schema as the grammar should see it; `defsPrefix` renames its `$defs` (and their refs). */
export function prepareSchema(schema: Schema, defsPrefix = ''): { schema: Schema; defs: Schema } {
  const copy = structuredClone(schema);
  const defs: Schema = {};
  walk(copy, '', (node) => {
    boundIntegers(node);
    if (typeof node.$ref === 'string') node.$ref = node.$ref.replace(/^#\/(\$defs|definitions)\//, `#/$defs/${defsPrefix}`);
  });
  for (const key of ['$defs', 'definitions'] as const) {
    const map = copy[key];
    if (isObject(map)) for (const [name, def] of Object.entries(map)) defs[defsPrefix + name] = def;
    delete copy[key];
  }
  return { schema: copy, defs };
}

function boundIntegers(node: Schema): void {
  const types = Array.isArray(node.type) ? node.type : [node.type];
  if (!types.includes('integer')) return;
  if (node.minimum === undefined && node.exclusiveMinimum === undefined) node.minimum = -MAX_SAFE;
  if (node.maximum === undefined && node.exclusiveMaximum === undefined) node.maximum = MAX_SAFE;
}

/** Visits every subschema (depth first) with its param path. */
function walk(node: Schema, path: string, visit: (node: Schema, path: string) => void): void {
  visit(node, path);
  for (const [key, value] of Object.entries(node)) {
    if (SCHEMA_MAPS.has(key) && isObject(value)) {
      for (const [name, sub] of Object.entries(value)) if (isObject(sub)) walk(sub, `${path}.${key}.${name}`, visit);
    } else if (SCHEMA_LISTS.has(key) && Array.isArray(value)) {
      value.forEach((sub, i) => isObject(sub) && walk(sub, `${path}.${key}[${i}]`, visit));
    } else if (SCHEMA_ONE.has(key) && isObject(value)) {
      walk(value, `${path}.${key}`, visit);
    }
  }
}

function isObject(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
