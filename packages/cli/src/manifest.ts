/**
 * Reading nexus.yaml: YAML with positions, `${VAR}` / `$VAR` interpolation from the environment, JSON Schema
 * validation (schema/nexus.schema.json), then checks the schema cannot express (duplicates, where
 * secrets come from). Every problem carries file:line:column; all problems are listed at once.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument, visit } from 'yaml';
import { CliError } from './io.ts';

export const SCHEMA = JSON.parse(
  readFileSync(new URL('../schema/nexus.schema.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;

export interface Problem {
  line: number;
  col: number;
  message: string;
}

/** Where a secret field's value comes from; the value itself is never printed. */
export type SecretSource =
  | { kind: 'env'; vars: string[]; value: string }
  | { kind: 'ref'; name: string }
  | { kind: 'literal'; value: string }
  /** `${VAR}` not set, read with `keepUnsetSecrets`: keep the broker's stored secret (plan-providers.ts). */
  | { kind: 'unset'; vars: string[]; line: number; col: number };

export interface ManifestOptions {
  /**
   * plan and apply: an unset variable in a client_secret is not an error, because the broker never
   * returns a stored secret and an export names one for every provider that has it (issue #24);
   * the plan keeps the stored secret, and refuses only where there is none to keep. validate, which
   * has no broker to ask, still names every unset variable.
   */
  keepUnsetSecrets?: boolean;
}

export interface ProviderSpec {
  name: string;
  /** With `template`: only the fields the file writes (plan-catalog.ts merges them over the entry's). */
  profile: Record<string, unknown>;
  /** A provider catalogue key (decision 0015). */
  template?: string;
  secret: SecretSource | undefined;
  /** undefined: aliases are not managed by this file. */
  aliases: string[] | undefined;
}

export interface AgentSpec {
  agent_id: string;
  description: string;
  allowed_scopes: string[];
  allowed_providers: string[];
  allowed_workspaces: string[];
  allowed_secrets: string[];
  active: boolean;
  /** undefined: not managed (the file leaves it out). */
  jwks_uri: string | null | undefined;
  /** undefined: not managed (the file leaves it out). */
  jwks: Record<string, unknown> | null | undefined;
}

export interface IssuerSpec {
  issuer: string;
  jwks_uri: string | null;
  use_discovery: boolean;
  audience: string;
  algorithms: string[];
  user_id_claim: string;
  tenant_claim: string | null;
  permissions_claim: string;
  clearance_claim: string | null;
}

export type Kind = 'scope' | 'trusted_issuer' | 'provider' | 'agent';

export interface Manifest {
  file: string;
  /** The sections the file has: only these kinds are pruned. */
  sections: Set<Kind>;
  secretStore: { user_id: string; zone: string } | undefined;
  scopes: { name: string; description: string }[];
  issuers: IssuerSpec[];
  providers: ProviderSpec[];
  agents: AgentSpec[];
  warnings: string[];
}

export class ManifestError extends CliError {
  readonly file: string;
  readonly problems: Problem[];
  constructor(file: string, problems: Problem[]) {
    super(problems.map((p) => `${file}:${p.line}:${p.col}: ${p.message}`).join('\n'));
    this.file = file;
    this.problems = problems;
  }
}

/**
 * Interpolation, in string values (never in map keys), left to right; text from the environment is
 * inserted as it is, never read again. A run of `$` signs followed by `{` or a name start:
 * - each `$$` of the run writes one literal `$` (`$${X}` → `${X}`, `$$X` → `$X`);
 * - an odd `$` left at its end starts a reference, `${NAME}` or `$NAME` (NAME: a letter or `_`,
 *   then letters, digits, `_`; `$NAME` takes the longest such run), replaced by the environment
 *   variable; one that is not set is an error. Not a reference (`${1}`, `${X:-d}`: no defaults),
 *   it stays a literal `$`.
 * Every other `$` stays as written (`$5`, `a$`, `$-x`, `a$$5`).
 */
export const VAR = /(\$+)(?=[{A-Za-z_])(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))?/g;

/** The inverse of VAR for text meant literally: every `$` VAR would read is doubled. */
export const escapeVars = (text: string) => text.replace(/\$+(?=[{A-Za-z_])/g, (run) => run + run);

/** `nexus validate|plan|apply` without -f read this file of the current directory, as the original did. */
export const DEFAULT_MANIFEST = 'nexus-providers.yaml';
const REF = /^nexus-secret:([A-Za-z0-9_.-]{1,128})$/;
const SECRET_PATHS = [['providers', '*', 'client_secret']];

function isSecretPath(path: readonly (string | number)[]): boolean {
  return SECRET_PATHS.some(
    (p) => p.length === path.length && p.every((seg, i) => seg === '*' || seg === String(path[i])),
  );
}

/** Loads, interpolates and validates a manifest; throws ManifestError listing every problem. */
export function loadManifest(
  file: string,
  env: Readonly<Record<string, string | undefined>>,
  options: ManifestOptions = {},
): Manifest {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new CliError(`cannot read ${file}: no such file`);
    throw new CliError(`cannot read ${file}: ${(error as Error).message}`);
  }
  return parseManifest(text, file, env, options);
}

export function parseManifest(
  text: string,
  file: string,
  env: Readonly<Record<string, string | undefined>>,
  options: ManifestOptions = {},
): Manifest {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const problems: Problem[] = [];
  const at = (offset: number | undefined, message: string) => {
    const pos = lines.linePos(offset ?? 0);
    problems.push({ line: pos.line, col: pos.col, message });
  };
  for (const error of doc.errors) at(error.pos[0], error.message.split('\n')[0]!);
  if (problems.length > 0) throw new ManifestError(file, problems);

  // Interpolation: every string scalar; secret fields remember where their value came from.
  const secrets = new Map<string, SecretSource>();
  visit(doc, {
    Scalar(key, node, ancestry) {
      // Keys are names, not values: `$ref` or `$schema` in a credential_schema stay as written.
      if (key === 'key' || typeof node.value !== 'string') return;
      const path = pathOf(ancestry, node);
      const raw = node.value;
      const vars: string[] = [];
      const missing: string[] = [];
      const value = raw.replace(VAR, (match, run: string, braced?: string, bare?: string) => {
        const escaped = '$'.repeat(Math.floor(run.length / 2));
        const name = braced ?? bare;
        if (run.length % 2 === 0) return escaped + match.slice(run.length);
        if (name === undefined) return `${escaped}$`;
        vars.push(name);
        const v = env[name];
        if (v === undefined) {
          missing.push(name);
          return match;
        }
        return escaped + v;
      });
      const secret = isSecretPath(path);
      if (secret && missing.length > 0 && options.keepUnsetSecrets) {
        const pos = lines.linePos(node.range?.[0] ?? 0);
        secrets.set(path.join('.'), { kind: 'unset', vars: missing, line: pos.line, col: pos.col });
      } else {
        for (const name of missing) at(node.range?.[0], `environment variable ${name} is not set`);
        if (secret) {
          const ref = REF.exec(raw);
          secrets.set(
            path.join('.'),
            ref
              ? { kind: 'ref', name: ref[1]! }
              : vars.length > 0
                ? { kind: 'env', vars, value }
                : { kind: 'literal', value },
          );
        }
      }
      if (value !== raw) node.value = value;
    },
  });

  const data = (doc.toJS() ?? {}) as Record<string, unknown>;
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(SCHEMA);
  if (!validate(data)) {
    for (const error of validate.errors ?? []) {
      const { offset, message } = describe(doc, error);
      at(offset, message);
    }
  }
  if (problems.length > 0) throw new ManifestError(file, dedupe(problems));

  const m = build(data, secrets, file);
  // Checks beyond the schema.
  const node = (path: (string | number)[]) => (doc.getIn(path, true) as Node | undefined)?.range?.[0];
  const seen = new Map<string, string>();
  const unique = (kind: string, key: string, path: (string | number)[]) => {
    const id = `${kind}:${key}`;
    if (seen.has(id)) at(node(path), `duplicate ${kind} "${key}" (also at ${seen.get(id)})`);
    else {
      const pos = lines.linePos(node(path) ?? 0);
      seen.set(id, `line ${pos.line}`);
    }
  };
  for (const [i, s] of m.scopes.entries()) unique('scope', s.name, ['scopes', i, 'name']);
  for (const [i, s] of m.issuers.entries())
    unique('trusted issuer', s.issuer, ['trusted_issuers', i, 'issuer']);
  for (const [i, a] of m.agents.entries()) unique('agent', a.agent_id, ['agents', i, 'agent_id']);
  m.providers.forEach((p, i) => {
    unique('provider name or alias', p.name, ['providers', i, 'name']);
    for (const [j, a] of (p.aliases ?? []).entries())
      unique('provider name or alias', a, ['providers', i, 'aliases', j]);
    if (p.secret?.kind === 'ref' && m.secretStore === undefined)
      at(
        node(['providers', i, 'client_secret']),
        'a nexus-secret: reference needs a top-level secret_store (user_id, zone) to read it from',
      );
    if (p.secret?.kind === 'literal')
      m.warnings.push(
        `${file}:${lines.linePos(node(['providers', i, 'client_secret']) ?? 0).line}: the client_secret of provider ${p.name} is written in the file; prefer \${VAR} or nexus-secret:NAME`,
      );
  });
  m.agents.forEach((a, i) => {
    if (a.jwks && a.jwks_uri) at(node(['agents', i, 'jwks']), 'give jwks or jwks_uri, not both');
  });
  if (problems.length > 0) throw new ManifestError(file, problems);
  return m;
}

function pathOf(ancestry: readonly unknown[], leaf: unknown): (string | number)[] {
  const path: (string | number)[] = [];
  const chain = [...ancestry, leaf];
  for (let i = 1; i < chain.length; i++) {
    const parent = chain[i - 1];
    const child = chain[i];
    if (isSeq(parent)) path.push(parent.items.indexOf(child as never));
    else if (isPair(parent) && parent.value === child && isScalar(parent.key))
      path.push(String(parent.key.value));
  }
  return path;
}

function describe(
  doc: ReturnType<typeof parseDocument>,
  error: ErrorObject,
): { offset?: number; message: string } {
  const path = error.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const where = path.length === 0 ? 'the file' : path.join('.');
  const target = doc.getIn(path, true) as Node | undefined;
  let offset = target?.range?.[0];
  let message = `${where}: ${error.message ?? 'invalid'}`;
  if (error.keyword === 'additionalProperties') {
    const extra = String((error.params as { additionalProperty: string }).additionalProperty);
    if (isMap(target)) {
      const pair = target.items.find((p) => isScalar(p.key) && p.key.value === extra);
      offset = (pair?.key as Node | undefined)?.range?.[0] ?? offset;
    }
    message = `${where}: unknown field "${extra}"`;
  } else if (error.keyword === 'enum') {
    const allowed = (error.params as { allowedValues: unknown[] }).allowedValues;
    message = `${where}: must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`;
  } else if (error.keyword === 'required') {
    message = `${where}: missing required field "${(error.params as { missingProperty: string }).missingProperty}"`;
  }
  return offset === undefined ? { message } : { offset, message };
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.line}:${p.col}:${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

const OPTIONAL_TEXT = [
  'client_id',
  'auth_url',
  'token_url',
  'issuer',
  'api_base_url',
  'user_info_endpoint',
  'description',
  'category',
] as const;

/** The provider profile as the broker stores it: defaults applied, "" meaning "not set". */
export function normalizeProfile(p: Record<string, unknown>): Record<string, unknown> {
  const profile: Record<string, unknown> = {
    name: p.name,
    auth_type: p.auth_type ?? 'oauth2',
    auth_header: p.auth_header ?? 'client_secret_post',
    enable_discovery: p.enable_discovery ?? false,
    scopes: [...new Set((p.scopes as string[] | undefined) ?? [])],
    params: p.params ?? {},
  };
  for (const field of OPTIONAL_TEXT) {
    const v = p[field];
    if (typeof v === 'string' && v !== '') profile[field] = v;
  }
  return profile;
}

/** A templated provider's own fields: no defaults, which would hide the entry's values. */
const explicitFields = (p: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(p).filter(([k]) => !['template', 'client_secret', 'aliases'].includes(k)),
  );

const list = (v: unknown) => [...new Set((v as string[] | undefined) ?? [])];

function build(data: Record<string, unknown>, secrets: Map<string, SecretSource>, file: string): Manifest {
  const sections = new Set<Kind>();
  if ('scopes' in data) sections.add('scope');
  if ('trusted_issuers' in data) sections.add('trusted_issuer');
  if ('providers' in data) sections.add('provider');
  if ('agents' in data) sections.add('agent');
  const store = data.secret_store as { user_id: string; zone?: string } | undefined;
  const arr = (k: string) => (data[k] as Record<string, unknown>[] | null | undefined) ?? [];
  return {
    file,
    sections,
    secretStore: store ? { user_id: store.user_id, zone: store.zone ?? 'default' } : undefined,
    warnings: [],
    scopes: arr('scopes').map((s) => ({ name: String(s.name), description: String(s.description ?? '') })),
    issuers: arr('trusted_issuers').map((t) => ({
      issuer: String(t.issuer),
      jwks_uri: (t.jwks_uri as string | undefined) || null,
      use_discovery: (t.use_discovery as boolean | undefined) ?? false,
      audience: String(t.audience),
      algorithms: list(t.algorithms ?? ['RS256', 'ES256']),
      user_id_claim: (t.user_id_claim as string | undefined) ?? 'sub',
      tenant_claim: (t.tenant_claim as string | undefined) ?? null,
      permissions_claim: (t.permissions_claim as string | undefined) ?? 'permissions',
      clearance_claim: (t.clearance_claim as string | undefined) ?? null,
    })),
    providers: arr('providers').map((p, i) => ({
      name: String(p.name),
      ...(typeof p.template === 'string'
        ? { template: p.template, profile: explicitFields(p) }
        : { profile: normalizeProfile(p) }),
      secret:
        typeof p.client_secret === 'string' && p.client_secret !== ''
          ? secrets.get(`providers.${i}.client_secret`)
          : undefined,
      aliases: Array.isArray(p.aliases) ? list(p.aliases) : undefined,
    })),
    agents: arr('agents').map((a) => ({
      agent_id: String(a.agent_id),
      description: (a.description as string | undefined) ?? '',
      allowed_scopes: list(a.allowed_scopes),
      allowed_providers: list(a.allowed_providers),
      allowed_workspaces: list(a.allowed_workspaces),
      allowed_secrets: list(a.allowed_secrets),
      active: (a.active as boolean | undefined) ?? true,
      // Like jwks: managed only when the file has the key (an agent's only way to log in must not
      // be cleared because a file written for its grants leaves it out).
      jwks_uri: 'jwks_uri' in a ? ((a.jwks_uri as string | null | undefined) ?? null) : undefined,
      jwks: 'jwks' in a ? ((a.jwks as Record<string, unknown> | null) ?? null) : undefined,
    })),
  };
}
