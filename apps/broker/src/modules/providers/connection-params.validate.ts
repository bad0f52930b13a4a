import { PLACEHOLDER, placeholdersIn, startsAUrl, TEMPLATED_FIELDS } from './connection-params.ts';
import { checkUrl, type Problem, type ValidationOptions } from './provider-url-rules.ts';
import type { StoredProfile } from './providers.schemas.ts';
import { secretHostParameters } from './secret-hosts.ts';

const MAX_DECLARED = 20;
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const DOTTED = /^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$/;
const PARAMETER_FIELDS: Record<string, 'required' | 'optional'> = {
  title: 'required',
  description: 'optional',
  pattern: 'required',
  default: 'optional',
  example: 'optional',
};
const LEARNT_FIELDS: Record<string, 'required' | 'optional'> = {
  from: 'required',
  url: 'optional',
  path: 'required',
  pattern: 'required',
};
const MAX_TEXT: Record<string, number> = { title: 200, description: 1000, pattern: 512, path: 512 };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Members of a token answer (or of the API answer a value is learnt `from: api`) that may hold
 * credentials (`access_token`, `refresh_token`, `id_token`, Slack's `bot.bot_access_token` and
 * `incoming_webhook.url`, OAuth 1's `oauth_token_secret`, an `api_key`), which a learnt value
 * (stored in the clear) may not read.
 */
const CREDENTIAL_MEMBER = /token|secret|password|webhook|key/i;
/** A sample value of a learnt value that starts a URL, to check the URL's shape with. */
const SAMPLE_ORIGIN = 'https://learnt.example.com';

/**
 * A pattern: compiles (`u` flag, as it is used), and is anchored at both ends, so that it decides
 * the whole value and not a part of it.
 */
function patternProblem(pattern: string): string | undefined {
  try {
    new RegExp(pattern, 'u');
  } catch {
    return 'must be a valid regular expression';
  }
  // Anchored: `^…$`, the final `$` not escaped (an odd number of backslashes before it escapes it).
  const trailing = /(\\*)\$$/.exec(pattern);
  if (!pattern.startsWith('^') || trailing === null || trailing[1]!.length % 2 === 1)
    return 'must be anchored: start with ^ and end with $';
  return undefined;
}

/** Checks one declaration's fields against `fields`; returns its pattern when it is usable. */
function checkEntry(
  problems: Problem[],
  path: string,
  entry: unknown,
  fields: Record<string, 'required' | 'optional'>,
): Record<string, string> | undefined {
  if (!isObject(entry)) {
    problems.push({ path, message: `must be an object {${Object.keys(fields).join(', ')}}` });
    return undefined;
  }
  let ok = true;
  for (const [key, need] of Object.entries(fields)) {
    if (entry[key] === undefined && need === 'required') {
      problems.push({ path: `${path}.${key}`, message: 'required' });
      ok = false;
    }
  }
  for (const [key, value] of Object.entries(entry)) {
    if (!Object.hasOwn(fields, key)) {
      problems.push({ path: `${path}.${key}`, message: 'unknown field' });
      ok = false;
    } else if (typeof value !== 'string' || value.length > (MAX_TEXT[key] ?? 2048)) {
      problems.push({
        path: `${path}.${key}`,
        message: `must be a string of at most ${MAX_TEXT[key] ?? 2048} characters`,
      });
      ok = false;
    }
  }
  if (!ok) return undefined;
  const problem = patternProblem(entry.pattern as string);
  if (problem !== undefined) {
    problems.push({ path: `${path}.pattern`, message: problem });
    return undefined;
  }
  return entry as Record<string, string>;
}

function checkDeclarations(
  problems: Problem[],
  key: 'connection_parameters' | 'learnt',
  value: unknown,
  fields: Record<string, 'required' | 'optional'>,
): Record<string, Record<string, string>> {
  const usable: Record<string, Record<string, string>> = {};
  if (value === undefined) return usable;
  if (!isObject(value)) {
    problems.push({ path: `params.${key}`, message: 'must be an object: name -> declaration' });
    return usable;
  }
  if (Object.keys(value).length > MAX_DECLARED)
    problems.push({ path: `params.${key}`, message: `at most ${MAX_DECLARED} entries` });
  for (const [name, entry] of Object.entries(value)) {
    const path = `params.${key}.${name}`;
    if (!NAME.test(name)) {
      problems.push({ path, message: 'a name is a letter or _, then letters, digits or _ (at most 64)' });
      continue;
    }
    const checked = checkEntry(problems, path, entry, fields);
    if (checked !== undefined) usable[name] = checked;
  }
  return usable;
}

/**
 * `params.connection_parameters`, `params.learnt`, and the `{name}` placeholders in the profile's
 * URLs (decision 0015): every placeholder names a declared parameter or learnt value; a learnt
 * value, known only after the first token answer, is never in `auth_url` or `token_url`; a value
 * that starts a URL is an https origin by its pattern; each URL (a `from: api` value's `url`
 * too: the broker calls it) is checked as any other once sample values (an `example`, a
 * `default`) fill it.
 */
export function checkConnectionParams(
  problems: Problem[],
  profile: StoredProfile,
  options: ValidationOptions,
): void {
  const declared = checkDeclarations(
    problems,
    'connection_parameters',
    profile.params.connection_parameters,
    PARAMETER_FIELDS,
  );
  const learnt = checkDeclarations(problems, 'learnt', profile.params.learnt, LEARNT_FIELDS);
  for (const [name, spec] of Object.entries(declared)) {
    const pattern = new RegExp(spec.pattern!, 'u');
    for (const field of ['default', 'example'] as const) {
      if (spec[field] !== undefined && !pattern.test(spec[field]))
        problems.push({
          path: `params.connection_parameters.${name}.${field}`,
          message: 'must match the pattern',
        });
    }
    if (Object.hasOwn(learnt, name))
      problems.push({
        path: `params.learnt.${name}`,
        message: 'also a connection parameter: one name, one source',
      });
  }
  for (const [name, spec] of Object.entries(learnt)) {
    const path = `params.learnt.${name}`;
    if (spec.from !== 'token_response' && spec.from !== 'api')
      problems.push({ path: `${path}.from`, message: 'must be token_response or api' });
    else if (spec.from === 'api' && spec.url === undefined)
      problems.push({ path: `${path}.url`, message: 'required with from: api (the URL to GET)' });
    else if (spec.from === 'token_response' && spec.url !== undefined)
      problems.push({ path: `${path}.url`, message: 'only with from: api' });
    if (!DOTTED.test(spec.path!))
      problems.push({
        path: `${path}.path`,
        message: 'must be a dotted path of member names or array indexes (a.0.b)',
      });
    // A learnt value is stored in the clear, shown to read keys and agents: never a credential.
    else if (spec.path!.split('.').some((p) => CREDENTIAL_MEMBER.test(p)))
      problems.push({
        path: `${path}.path`,
        message:
          'must not name a token or secret (a member named like token, secret, password, webhook or key): learnt values are not secret',
      });
  }
  if (Object.keys(learnt).length > 0 && profile.auth_type !== 'oauth2')
    problems.push({
      path: 'params.learnt',
      message: 'only for oauth2: values are learnt with the tokens of the consent',
    });

  const urls: [string, string | undefined][] = [
    ...TEMPLATED_FIELDS.map((f): [string, string | undefined] => [f, profile[f]]),
    [
      'params.revocation_endpoint',
      typeof profile.params.revocation_endpoint === 'string' ? profile.params.revocation_endpoint : undefined,
    ],
  ];
  // The URLs values are learnt from (`from: api`) are called at consent with the new access token.
  const apiUrls = new Set<string>();
  for (const [name, spec] of Object.entries(learnt)) {
    if (spec.from !== 'api' || spec.url === undefined) continue;
    apiUrls.add(`params.learnt.${name}.url`);
    urls.push([`params.learnt.${name}.url`, spec.url]);
  }
  for (const [path, template] of urls) {
    const names = placeholdersIn(template);
    if (template === undefined) continue;
    if (apiUrls.has(path)) {
      learntUrlProblems(problems, path, template, profile, learnt);
      if (names.length === 0) checkUrl(problems, path, template, options, true);
    }
    if (names.length === 0) continue;
    let complete = true;
    const samples: Record<string, string> = {};
    for (const [index, name] of names.entries()) {
      const start = template.startsWith(`{${name}}`);
      // A value is a whole origin (it starts a URL) or a URL-safe part, never both.
      if (startsAUrl(profile, name) && !(start && index === 0))
        problems.push({ path, message: `{${name}} starts another URL: it may only start a URL` });
      if (Object.hasOwn(declared, name)) {
        const spec = declared[name]!;
        samples[name] = spec.example ?? spec.default ?? (start ? SAMPLE_ORIGIN : 'example');
      } else if (Object.hasOwn(learnt, name)) {
        if (path === 'auth_url' || path === 'token_url')
          problems.push({
            path,
            message: `{${name}} is learnt at consent: the first consent has no value for it here`,
          });
        samples[name] = start ? SAMPLE_ORIGIN : 'example';
      } else {
        problems.push({
          path,
          message: `{${name}} names neither a params.connection_parameters entry nor a params.learnt value`,
        });
        complete = false;
        continue;
      }
      const pattern = (declared[name] ?? learnt[name])!.pattern!;
      if (start && !/^\^https:(\\\/|\/){2}/.test(pattern) && !options.allowLoopbackHttp)
        problems.push({
          path,
          message: `{${name}} starts the URL: its pattern must start with ^https:// (an https origin)`,
        });
    }
    if (!complete) continue;
    const sample = template.replace(PLACEHOLDER, (_, name: string) => samples[name]!);
    if (path === 'user_info_endpoint' && sample.startsWith('/')) continue;
    checkUrl(problems, path, sample, options, path !== 'auth_url');
  }
  checkStrategyPlaceholders(problems, profile, declared);
  for (const { path, name } of secretHostParameters(profile))
    problems.push({
      path: `params.connection_parameters.${name}.pattern`,
      message: `{${name}} fills the host of ${path}, where the client secret is sent, and its pattern lets whoever requests a connection name any host: pin it to the provider's domain (e.g. ^[a-z0-9-]+\\.okta\\.com$), or write the host in the URL`,
    });
  // Other URLs are used as written: a placeholder there would never be filled.
  for (const field of ['issuer'] as const)
    if (placeholdersIn(profile[field]).length > 0)
      problems.push({
        path: field,
        message:
          'placeholders are filled only in auth_url, token_url, params.revocation_endpoint, user_info_endpoint and api_base_url',
      });
  if (typeof profile.params.jwks_uri === 'string' && placeholdersIn(profile.params.jwks_uri).length > 0)
    problems.push({
      path: 'params.jwks_uri',
      message:
        'placeholders are filled only in auth_url, token_url, params.revocation_endpoint, user_info_endpoint and api_base_url',
    });
}

/**
 * A `from: api` learnt value's URL is filled when it is called, after the token answer: its
 * placeholders may name connection parameters and values learnt from the token response, never a
 * value learnt from an API (one call does not wait for another). A placeholder that starts it is a
 * whole origin, as it is where it starts one of the provider's URLs.
 */
function learntUrlProblems(
  problems: Problem[],
  path: string,
  template: string,
  profile: StoredProfile,
  learnt: Record<string, Record<string, string>>,
): void {
  for (const [index, name] of placeholdersIn(template).entries()) {
    if (learnt[name]?.from === 'api')
      problems.push({
        path,
        message: `{${name}} is learnt from an API too: it has no value when this is called`,
      });
    else if (index === 0 && template.startsWith(`{${name}}`) && !startsAUrl(profile, name))
      problems.push({
        path,
        message: `{${name}} starts this URL: it must also start one of the provider's URLs (a whole origin)`,
      });
  }
}

/**
 * `{name}` in a static strategy's settings (`region: "{region}"` of aws_sigv4) names a declared
 * connection parameter: filled per connection in the token answer. (The `headers` strategy's
 * placeholders are credential fields, checked with its headers.)
 */
function checkStrategyPlaceholders(
  problems: Problem[],
  profile: StoredProfile,
  declared: Record<string, unknown>,
): void {
  const strategy = profile.params.auth_strategy as { type?: unknown; config?: unknown } | undefined;
  if (profile.auth_type === 'oauth2' || strategy?.type === 'headers') return;
  const config = strategy?.config;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return;
  for (const [key, value] of Object.entries(config)) {
    if (typeof value !== 'string') continue;
    for (const name of placeholdersIn(value))
      if (!Object.hasOwn(declared, name))
        problems.push({
          path: `params.auth_strategy.config.${key}`,
          message: `{${name}} names no params.connection_parameters entry`,
        });
  }
}
