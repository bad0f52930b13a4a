/**
 * The `headers` strategy (decision 0015, "Several headers"): its config maps each HTTP header name
 * to a value template in which `{field}` stands for a captured credential field, for APIs that
 * need more than one header (Anthropic: `x-api-key` and `anthropic-version`; Datadog: two keys).
 *
 * A placeholder is `{` + a credential field name (the capture form's names: letters, digits, dot,
 * dash, underscore) + `}`; registration refuses any other brace (headers.validate.ts in
 * providers/), so a template means the same thing to the broker and to every SDK.
 */

/** One `{field}` placeholder; the field name is the capture form's (capture.schema.ts). */
export const PLACEHOLDER = /\{([A-Za-z0-9_.-]{1,64})\}/g;

/** The credential fields a template names, in order of first appearance. */
export function templateFields(template: string): string[] {
  return [...new Set([...template.matchAll(PLACEHOLDER)].map((m) => m[1] as string))];
}

/** The credential fields a headers config names, over all its headers (values not strings: none). */
export function headersFields(config: Readonly<Record<string, unknown>>): string[] {
  const templates = Object.values(config).filter((v): v is string => typeof v === 'string');
  return [...new Set(templates.flatMap(templateFields))];
}

/**
 * Each header's value with its placeholders replaced by credential values. `field` returns a
 * field's value or throws naming the field (never a value).
 */
export function expandHeaders(
  config: Readonly<Record<string, string>>,
  field: (name: string) => string,
): [name: string, value: string][] {
  return Object.entries(config).map(([name, template]) => [
    name,
    template.replace(PLACEHOLDER, (_, f: string) => field(f)),
  ]);
}
